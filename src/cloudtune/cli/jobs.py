"""`cloudtune jobs ...`: submit, list, follow, wait for, cancel and delete jobs (SDK only)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from cloudtune.cli import common
from cloudtune.cli.common import JsonOpt, call, client, console, fail, money, print_json
from cloudtune.cli.progress import JobProgress
from cloudtune.client import Client, models

app = typer.Typer(
    rich_markup_mode=None,
    help="Submit, list, follow, wait for and cancel jobs.",
    no_args_is_help=True,
)

JobArg = Annotated[str, typer.Argument(help="The job's id (`cloudtune jobs list`).")]
ProviderOpt = Annotated[
    str | None,
    typer.Option("--provider", "-p", help="local, replicate, … (default: the server's)."),
]


def _request(config: str) -> dict[str, Any]:
    """A JSON file (`{"config", "dataloader_config"}`, or a bare config) or a saved config's
    name."""
    path = Path(config).expanduser()
    if not path.is_file():
        if config.endswith(".json") or os.sep in config:
            raise fail(f"no such file: {config}", code=2)
        return {"config_name_to_load": config}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise fail(f"{config} is not a JSON file: {exc}", code=2) from None
    if not isinstance(data, dict):
        raise fail(f"{config} must hold a JSON object", code=2)
    if "config" not in data and "config_name_to_load" not in data:
        data = {"config": data}
    return data


def _publish(targets: list[str]) -> dict[str, Any] | None:
    """`hub:owner/name[:private]`, `s3:bucket[/prefix]` (keys, region and endpoint from the
    usual AWS_* variables), or `none`."""
    if not targets:
        return None
    chosen: dict[str, Any] = {}
    for target in targets:
        kind, _, rest = target.partition(":")
        if kind == "none" and not rest:
            return {}
        if kind == "hub" and rest:
            repo, _, flag = rest.partition(":")
            hub: dict[str, Any] = {"repo_id": repo, "private": flag == "private"}
            if os.environ.get("HF_TOKEN"):
                hub["token"] = os.environ["HF_TOKEN"]
            chosen["hub"] = hub
        elif kind == "s3" and rest:
            bucket, _, prefix = rest.partition("/")
            s3: dict[str, Any] = {"bucket": bucket}
            if prefix:
                s3["prefix"] = prefix
            for field, variable in (
                ("access_key_id", "AWS_ACCESS_KEY_ID"),
                ("secret_access_key", "AWS_SECRET_ACCESS_KEY"),
                ("region", "AWS_DEFAULT_REGION"),
                ("endpoint_url", "AWS_ENDPOINT_URL"),
            ):
                if os.environ.get(variable):
                    s3[field] = os.environ[variable]
            chosen["s3"] = s3
        else:
            raise fail(
                f"--publish {target!r}: use hub:owner/name[:private], s3:bucket[/prefix] or none",
                code=2,
            )
    return chosen


@app.command()
def submit(
    config: Annotated[str, typer.Argument(help="A saved config's name, or a JSON file.")],
    provider: ProviderOpt = None,
    hardware_profile: Annotated[str | None, typer.Option(help="e.g. h100, l40s.")] = None,
    run_name: Annotated[str | None, typer.Option(help="The run's name.")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="A retry with the same key answers the same job.")
    ] = None,
    max_cost: Annotated[
        float | None, typer.Option(help="Cancel the job once it has cost this much (USD).")
    ] = None,
    publish: Annotated[
        list[str] | None,
        typer.Option(help="hub:owner/name[:private], s3:bucket[/prefix] or none; repeatable."),
    ] = None,
    agree_to_upload: Annotated[
        bool, typer.Option(help="Agree to upload local datasets (the server may ask for it).")
    ] = False,
    wait: Annotated[bool, typer.Option(help="Follow the job until it ends.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Submit a job. With --wait, exit 0 once it completed, 1 if it failed or was cancelled."""
    body = _request(config)
    extra = {
        "hardware_profile": hardware_profile,
        "tracker_run_name": run_name,
        "max_cost_usd": max_cost,
        "publish": _publish(publish or []),
        "upload_consent": True if agree_to_upload else None,
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    with client() as made:
        result = made.submit(body, provider=provider, idempotency_key=idempotency_key)
        if not wait:
            if as_json:
                print_json(result)
                return
            again = " (the job this key made before)" if result.idempotent_hit else ""
            console.print(f"{result.job_id} {result.status} on {result.provider}{again}")
            if result.cost_limit_warning:
                console.print(f"[yellow]warning:[/yellow] {result.cost_limit_warning}")
            return
        if not as_json:
            console.print(f"submitted {result.job_id} to {result.provider}")
        job = _follow(made, result.job_id, quiet=as_json)
    _end(job, as_json)


def _follow(made: Client, job_id: str, *, quiet: bool) -> models.Job:
    if quiet:
        return made.wait(job_id)
    with JobProgress(console) as progress:
        return made.wait(job_id, on_update=progress.update)


def _end(job: models.Job, as_json: bool) -> None:
    if as_json:
        print_json(job)
    else:
        line = f"{job.job_id} {job.status}"
        if job.cost_usd is not None:
            line += f", cost {money(job.cost_usd)}"
        if job.error_message:
            line += f": {job.error_message}"
        console.print(line, highlight=False)
    if job.status != "completed":
        raise typer.Exit(code=1)


@app.command()
def wait(job_id: JobArg, as_json: JsonOpt = False) -> None:
    """Wait for a job to end: exit 0 when it completed, 1 when it failed or was cancelled."""
    with client() as made:
        job = _follow(made, job_id, quiet=as_json)
    _end(job, as_json)


@app.command("list")
def list_jobs(
    status: Annotated[str | None, typer.Option(help="Comma list of statuses.")] = None,
    provider: ProviderOpt = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 20,
    offset: int = 0,
    as_json: JsonOpt = False,
) -> None:
    """List jobs, newest first."""
    page = call(
        lambda c: c.list_jobs(status=status, provider=provider, limit=limit, offset=offset)
    )
    if as_json:
        print_json(page)
        return
    common.table(
        ("job", "status", "provider", "run", "progress", "cost", "created"),
        (
            (
                job.job_id,
                job.status,
                job.provider,
                job.tracker_run_name or job.config_name or "",
                _progress_text(job),
                money(job.cost_usd if job.cost_usd is not None else job.estimated_cost_usd),
                job.created_at.strftime("%Y-%m-%d %H:%M"),
            )
            for job in page.jobs
        ),
    )
    console.print(f"{len(page.jobs)} of {page.total}", style="dim")


def _progress_text(job: models.Job) -> str:
    step, total = job.progress.step, job.progress.total_steps
    text = f"{step}/{total}" if step is not None and total else ""
    if job.progress.loss is not None:
        text += f" loss {job.progress.loss:.4f}"
    return text.strip()


@app.command()
def get(job_id: JobArg, as_json: JsonOpt = False) -> None:
    """One job: its status, progress, cost and where its outputs are."""
    job = call(lambda c: c.get_job(job_id))
    if as_json:
        print_json(job)
        return
    rows = {
        "job": job.job_id,
        "status": job.status,
        "provider": job.provider,
        "run": job.tracker_run_name or job.config_name,
        "hardware": job.hardware_type,
        "progress": _progress_text(job),
        "cost": money(job.cost_usd),
        "estimate": money(job.estimated_cost_usd),
        "created": job.created_at.isoformat(),
        "outputs": job.output_url,
        "error": job.error_message or job.delivery_error or job.publish_error,
    }
    common.table(("", ""), ((k, v) for k, v in rows.items() if v not in (None, "")))


@app.command()
def logs(
    job_id: JobArg,
    tail: Annotated[int | None, typer.Option(help="Only the last N lines.")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing as the job writes.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Print a job's log; with --follow, until the job ends (exit 1 if it did not complete)."""
    with client() as made:
        if not follow:
            text = made.logs(job_id, tail=tail)
            if as_json:
                print_json({"job_id": job_id, "logs": text})
            else:
                typer.echo(text, nl=not text.endswith("\n") and bool(text))
            return
        status = _stream(made, job_id, as_json)
    if status != "completed":
        raise typer.Exit(code=1)


def _stream(made: Client, job_id: str, as_json: bool) -> str | None:
    """Print the log as it comes; below it, the job's progress (polled beside the stream)."""
    status: str | None = None
    stop = threading.Event()
    with JobProgress(console, enabled=not as_json) as progress:

        def poll() -> None:
            with Client(made.settings.url, api_key=made.settings.credential) as poller:
                while not stop.is_set():
                    progress.update(poller.get_job(job_id))
                    stop.wait(2.0)

        watcher = threading.Thread(target=poll, daemon=True)
        watcher.start()
        try:
            for event in made.stream_logs(job_id):
                if event.event is None:
                    if as_json:
                        print_json({"log": event.data})
                    else:
                        console.print(event.data, highlight=False, markup=False)
                elif event.event in ("status", "done") and event.data != "stream_end":
                    status = event.data
                    if as_json:
                        print_json({"status": status})
        finally:
            stop.set()
    return status


@app.command()
def cancel(job_id: JobArg, as_json: JsonOpt = False) -> None:
    """Cancel a job (its trainer stops; a cloud job's prediction is cancelled)."""
    status = call(lambda c: c.cancel_job(job_id))
    print_json({"job_id": job_id, "status": status}) if as_json else console.print(
        f"{job_id} {status}"
    )


@app.command()
def delete(job_id: JobArg, as_json: JsonOpt = False) -> None:
    """Delete a finished job and its logs."""
    call(lambda c: c.delete_job(job_id))
    print_json({"job_id": job_id, "deleted": True}) if as_json else console.print(
        f"{job_id} deleted"
    )


@app.command()
def preview(
    config: Annotated[str, typer.Argument(help="A saved config's name, or a JSON file.")],
    provider: ProviderOpt = None,
    hardware_profile: Annotated[str | None, typer.Option(help="e.g. h100, l40s.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """What a submit would upload and cost, without submitting."""
    body = _request(config)
    if hardware_profile:
        body["hardware_profile"] = hardware_profile
    summary = call(lambda c: c.preview(body, provider=provider))
    if as_json:
        print_json(summary)
        return
    leaves = "leaves this machine" if summary.data_leaves_machine else "stays on this machine"
    console.print(
        f"{summary.files} files, {summary.bytes:,} bytes; the data {leaves} "
        f"(provider {summary.provider}, consent setting {summary.consent})",
        highlight=False,
    )
    common.table(
        ("dataset", "files", "bytes"),
        ((d.get("id"), d.get("files"), d.get("bytes")) for d in summary.datasets),
    )
    if summary.excluded_files:
        console.print(f"left out: {', '.join(summary.excluded_files[:10])}", highlight=False)
    console.print(f"estimated cost: {money(summary.estimated_cost_usd)}")
    for warning in summary.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    if summary.blocked:
        raise fail("a submit would be refused (see the warnings)")


@app.command()
def outputs(
    job_id: JobArg,
    download: Annotated[
        Path | None, typer.Option(help="Copy every output file into this folder.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """A job's output files; with --download DIR, copied there (resumable, checked)."""
    with client() as made:
        listing = made.outputs(job_id)
        if download is not None:
            _download(made, listing, download, quiet=as_json)
    if as_json:
        print_json(listing)
        return
    common.table(
        ("file", "size", "sha256"),
        ((f.path, f"{f.size:,}", (f.sha256 or "")[:16]) for f in listing.files),
    )
    if listing.delivery_error:
        console.print(f"[yellow]delivery:[/yellow] {listing.delivery_error}", highlight=False)


def _download(made: Client, listing: models.Outputs, folder: Path, *, quiet: bool) -> None:
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    total = sum(f.size for f in listing.files)
    with Progress(
        *Progress.get_default_columns(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
        disable=quiet,
    ) as bar:
        task = bar.add_task("downloading", total=total)
        for item in listing.files:
            made.download(item, folder, on_bytes=lambda n: bar.advance(task, n))
