"""`cloudtune jobs ...`: talks to a running server through the SDK only."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cloudtune.client import Client, ClientError

app = typer.Typer(help="Submit, list, follow and cancel jobs on a cloudtune server.")
console = Console()

ServerOpt = Annotated[
    str, typer.Option("--server", envvar="CLOUDTUNE_SERVER", help="Server base URL.")
]


def _client(server: str) -> Client:
    return Client(server)


def _fail(exc: ClientError) -> typer.Exit:
    console.print(f"[red]error[/red] {exc.code}: {exc.detail}")
    return typer.Exit(code=1)


@app.command("list")
def list_jobs(
    server: ServerOpt = "http://127.0.0.1:8001",
    status: Annotated[str | None, typer.Option(help="Comma list of statuses.")] = None,
    limit: int = 20,
) -> None:
    """List jobs, newest first."""
    try:
        page = _client(server).list_jobs(status=status, limit=limit)
    except ClientError as exc:
        raise _fail(exc) from None
    table = Table("job_id", "provider", "status", "progress", "created_at")
    for job in page["jobs"]:
        pct = job["progress"].get("percent")
        table.add_row(
            job["job_id"],
            job["provider"],
            job["status"],
            f"{pct}%" if pct else "",
            job["created_at"],
        )
    console.print(table)
    console.print(f"{len(page['jobs'])} of {page['total']}")


@app.command()
def submit(
    config_file: Annotated[typer.FileText, typer.Argument(help="JSON with config + dataloader.")],
    server: ServerOpt = "http://127.0.0.1:8001",
    provider: str = "local",
    idempotency_key: str | None = None,
) -> None:
    """Submit a job from a JSON file `{"config": {...}, "dataloader_config": [...]}`."""
    body = json.load(config_file)
    if idempotency_key:
        body["idempotency_key"] = idempotency_key
    try:
        result = _client(server).submit(body, provider=provider)
    except ClientError as exc:
        raise _fail(exc) from None
    console.print(f"{result['job_id']} {result['status']}")


@app.command()
def get(job_id: str, server: ServerOpt = "http://127.0.0.1:8001") -> None:
    """Show one job as JSON."""
    try:
        console.print_json(data=_client(server).get_job(job_id))
    except ClientError as exc:
        raise _fail(exc) from None


@app.command()
def logs(
    job_id: str, server: ServerOpt = "http://127.0.0.1:8001", tail: int | None = None
) -> None:
    """Print a job's log."""
    try:
        typer.echo(_client(server).logs(job_id, tail=tail), nl=False)
    except ClientError as exc:
        raise _fail(exc) from None


@app.command()
def cancel(job_id: str, server: ServerOpt = "http://127.0.0.1:8001") -> None:
    """Cancel a job."""
    try:
        console.print(_client(server).cancel(job_id)["status"])
    except ClientError as exc:
        raise _fail(exc) from None
