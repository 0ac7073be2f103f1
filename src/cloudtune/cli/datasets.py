"""`cloudtune datasets push|list`: datasets on the server's built-in S3 endpoint, for jobs
whose data is not on the server's disk (`"dataset": "<name>"` in a dataloader)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

from cloudtune.cli.common import JsonOpt, call, client, console, fail, print_json
from cloudtune.client import datasets as dataset_files

app = typer.Typer(
    rich_markup_mode=None,
    help="Upload datasets to the server and list them.",
    no_args_is_help=True,
)


@app.command()
def push(
    name: str,
    folder: Annotated[Path, typer.Argument(help="The dataset's folder (images and captions).")],
    as_json: JsonOpt = False,
) -> None:
    """Upload a folder as the dataset NAME (hidden files and links are left out)."""
    try:
        files = list(dataset_files.files_of(folder))
    except FileNotFoundError as exc:
        raise fail(str(exc), code=2) from None
    if not files:
        raise fail(f"{folder} holds no files to upload", code=2)
    total = sum(path.stat().st_size for _, path in files)
    with (
        client() as made,
        Progress(
            *Progress.get_default_columns(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=console,
            disable=as_json,
        ) as bar,
    ):
        task = bar.add_task(f"uploading {name}", total=total)
        keys = made.push_dataset(name, folder, on_bytes=lambda n: bar.advance(task, n))
    if as_json:
        print_json({"dataset": name, "files": len(keys), "bytes": total})
    else:
        console.print(f'{name}: {len(keys)} files, {total:,} bytes; use "dataset": "{name}"')


@app.command("list")
def list_datasets(as_json: JsonOpt = False) -> None:
    """Your uploaded datasets."""
    names = call(lambda c: c.list_datasets())
    if as_json:
        print_json(names)
    else:
        for name in names:
            typer.echo(name)
