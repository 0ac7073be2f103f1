"""`cloudtune jobs ...`: talks to a running server through the SDK only."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from cloudtune.client import APIError, Client, ServerUnreachable

app = typer.Typer(help="Submit, list, follow and cancel jobs on a cloudtune server.")
console = Console()
errors = Console(stderr=True)
T = TypeVar("T")

ServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server",
        help="Server base URL (else CLOUDTUNE_URL, SIMPLETUNER_URL, the saved login, or "
        "http://127.0.0.1:8001).",
    ),
]


@contextmanager
def _refusals() -> Iterator[None]:
    """A refusal is one line and exit 1; no server at all is exit 2; never a traceback."""
    try:
        yield
    except APIError as exc:
        errors.print(f"[red]error[/red] {exc.message} ({exc.code})", highlight=False)
        raise typer.Exit(code=1) from None
    except ServerUnreachable as exc:
        errors.print(f"[red]error[/red] {exc}", highlight=False)
        raise typer.Exit(code=2) from None


def _with_client(server: str | None, action: Callable[[Client], T]) -> T:
    with _refusals(), Client(server) as client:
        return action(client)


@app.command("list")
def list_jobs(
    server: ServerOpt = None,
    status: Annotated[str | None, typer.Option(help="Comma list of statuses.")] = None,
    limit: int = 20,
) -> None:
    """List jobs, newest first."""
    page = _with_client(server, lambda c: c.list_jobs(status=status, limit=limit))
    table = Table("job_id", "provider", "status", "progress", "created_at")
    for job in page.jobs:
        pct = job.progress.percent
        table.add_row(
            job.job_id,
            job.provider,
            job.status,
            f"{pct}%" if pct else "",
            job.created_at.isoformat(),
        )
    console.print(table)
    console.print(f"{len(page.jobs)} of {page.total}")


@app.command()
def submit(
    config_file: Annotated[typer.FileText, typer.Argument(help="JSON with config + dataloader.")],
    server: ServerOpt = None,
    provider: str = "local",
    idempotency_key: str | None = None,
) -> None:
    """Submit a job from a JSON file `{"config": {...}, "dataloader_config": [...]}`."""
    body = json.load(config_file)
    result = _with_client(
        server, lambda c: c.submit(body, provider=provider, idempotency_key=idempotency_key)
    )
    console.print(f"{result.job_id} {result.status}")


@app.command()
def get(job_id: str, server: ServerOpt = None) -> None:
    """Show one job as JSON."""
    job = _with_client(server, lambda c: c.get_job(job_id))
    console.print_json(job.model_dump_json())


@app.command()
def logs(job_id: str, server: ServerOpt = None, tail: int | None = None) -> None:
    """Print a job's log."""
    typer.echo(_with_client(server, lambda c: c.logs(job_id, tail=tail)), nl=False)


@app.command()
def cancel(job_id: str, server: ServerOpt = None) -> None:
    """Cancel a job."""
    console.print(_with_client(server, lambda c: c.cancel_job(job_id)))
