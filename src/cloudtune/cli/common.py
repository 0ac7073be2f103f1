"""What every command that talks to a server shares: the server and credential (the root
command's `--url`/`--api-key`, else what `cloudtune.client.settings` finds), one line and a
non-zero exit for a refusal, `--json` output, and tables.

Exit codes: 0 done; 1 the server refused (its message, one line) or a job ended failed or
cancelled; 2 no server answered, or the command was used wrongly."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Column, Table

from cloudtune.client import APIError, Client, CloudtuneClientError, ServerUnreachable

T = TypeVar("T")
console = Console()
stderr = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")]


@dataclass
class Target:
    """Set by the root command's options."""

    url: str | None = None
    api_key: str | None = None


target = Target()


def fail(message: str, code: int = 1) -> typer.Exit:
    stderr.print(f"[red]error:[/red] {message}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code=code)


@contextmanager
def refusals() -> Iterator[None]:
    """A refusal is one line and exit 1; no server at all is exit 2; never a traceback."""
    try:
        yield
    except APIError as exc:
        raise fail(f"{exc.message} ({exc.code})") from None
    except ServerUnreachable as exc:
        raise fail(str(exc), code=2) from None
    except (CloudtuneClientError, OSError) as exc:  # a download refused or a file not written
        raise fail(str(exc)) from None


@contextmanager
def client() -> Iterator[Client]:
    with refusals(), Client(target.url, api_key=target.api_key) as made:
        yield made


def call(action: Callable[[Client], T]) -> T:
    with client() as made:
        return action(made)


def to_jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    return value


def print_json(value: Any) -> None:
    # Plain print, not rich: the output is for scripts (no colour, no wrapping).
    typer.echo(json.dumps(to_jsonable(value), indent=2, default=str))


def table(
    columns: Sequence[str], rows: Iterable[Sequence[object]], title: str | None = None
) -> None:
    # Folded, never cut with an ellipsis: an id must stay whole to be copied.
    shown = Table(
        *(Column(name, overflow="fold") for name in columns), title=title, title_justify="left"
    )
    for row in rows:
        shown.add_row(*("" if cell is None else str(cell) for cell in row))
    console.print(shown)


def money(usd: float | None) -> str:
    return "—" if usd is None else f"${usd:,.2f}"
