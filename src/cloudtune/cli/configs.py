"""`cloudtune configs ...`: the server's saved configs, by name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from cloudtune.cli import common
from cloudtune.cli.common import JsonOpt, call, console, fail, print_json

app = typer.Typer(
    rich_markup_mode=None, help="List, show, save and delete saved configs.", no_args_is_help=True
)


@app.command("list")
def list_configs(as_json: JsonOpt = False) -> None:
    """The saved configs."""
    configs = call(lambda c: c.list_configs())
    if as_json:
        print_json(configs)
        return
    common.table(
        ("name", "model", "description"),
        (
            (
                c.name,
                f"{c.model_family or ''} {c.model_type or ''}".strip(),
                c.description or "",
            )
            for c in configs
        ),
    )


@app.command()
def show(name: str, as_json: JsonOpt = False) -> None:
    """One config: its trainer arguments and datasets."""
    config = call(lambda c: c.get_config(name))
    if as_json:
        print_json(config)
        return
    console.print_json(
        json.dumps({"config": config.config, "dataloader_config": config.dataloader_config})
    )


@app.command()
def save(
    name: str,
    file: Annotated[
        Path, typer.Argument(help='JSON: {"config": {...}, "dataloader_config": [...]}.')
    ],
    description: Annotated[str | None, typer.Option(help="A line about it.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Save (create or replace) a config from a JSON file."""
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise fail(f"{file}: {exc}", code=2) from None
    if not isinstance(data, dict):
        raise fail(f"{file} must hold a JSON object", code=2)
    config = data.get("config", data)
    dataloader = data.get("dataloader_config")
    saved = call(lambda c: c.save_config(name, config, dataloader, description=description))
    print_json(saved) if as_json else console.print(f"saved {saved.name}")


@app.command()
def delete(name: str, as_json: JsonOpt = False) -> None:
    """Delete a saved config."""
    call(lambda c: c.delete_config(name))
    print_json({"name": name, "deleted": True}) if as_json else console.print(f"deleted {name}")
