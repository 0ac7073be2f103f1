"""`cloudtune login|logout|whoami` and `cloudtune keys ...`: who the CLI is on a server."""

from __future__ import annotations

from typing import Annotated

import typer

from cloudtune.cli import common
from cloudtune.cli.common import JsonOpt, call, client, console, print_json, refusals, target
from cloudtune.client import settings

keys = typer.Typer(
    rich_markup_mode=None, help="Create, list and revoke your API keys.", no_args_is_help=True
)


def login(
    username: Annotated[str | None, typer.Option(help="Prompted when left out.")] = None,
    password: Annotated[
        str | None, typer.Option(help="Prompted (hidden) when left out.", envvar=None)
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option("--key", help="Save this API key instead of signing in with a password."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Sign in to the server and save the session (or a key) for later commands, in a file
    only you can read."""
    url = settings.ClientSettings.resolve(url=target.url).url
    if api_key:
        target.api_key = api_key
        me = call(lambda c: c.me())
        credential = api_key
    else:
        username = username or typer.prompt("Username")
        password = password or typer.prompt("Password", hide_input=True)
        with client() as made:
            credential = made.login(username, password).token
            me = made.me()
    with refusals():
        path = settings.save(url, credential)
    if as_json:
        print_json({"url": url, "username": me.username, "role": me.role, "saved_to": str(path)})
    else:
        console.print(f"signed in to {url} as {me.username} ({me.role}); saved in {path}")


def logout(as_json: JsonOpt = False) -> None:
    """End the saved session on the server and forget it here."""
    saved = settings.read_saved()
    if saved is not None and not saved[1].startswith("stk_"):
        target.url = target.url or saved[0]
        target.api_key = saved[1]
        with client() as made:
            made.logout()
    forgot = settings.forget()
    if as_json:
        print_json({"logged_out": forgot})
    else:
        console.print("signed out" if forgot else "no saved login")


def whoami(as_json: JsonOpt = False) -> None:
    """Who the server takes you for, and what you may do."""
    me = call(lambda c: c.me())
    if as_json:
        print_json(me)
        return
    console.print(f"{me.username} ({me.role}, by {me.auth_method})")
    console.print(", ".join(sorted(me.permissions)), style="dim")


@keys.command("create")
def create_key(
    name: str,
    expires_days: Annotated[int | None, typer.Option(help="1-365 (default: never).")] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option(help="A permission the key may use (repeatable; default: all of yours)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Make an API key; it is shown this once."""
    made = call(lambda c: c.create_key(name, expires_days=expires_days, permissions=scope))
    if as_json:
        print_json(made)
        return
    console.print(f"{made.key_info.name} ({made.key_info.id}): shown only now, keep it safe:")
    typer.echo(made.key)


@keys.command("list")
def list_keys(as_json: JsonOpt = False) -> None:
    """Your API keys (never the keys themselves)."""
    found = call(lambda c: c.list_keys())
    if as_json:
        print_json(found)
        return
    common.table(
        ("id", "name", "prefix", "scopes", "expires", "last used", "active"),
        (
            (
                k.id,
                k.name,
                k.key_prefix,
                ",".join(k.scoped_permissions or ["all of yours"]),
                k.expires_at or "never",
                k.last_used_at or "never",
                "yes" if k.is_active else "no",
            )
            for k in found
        ),
    )


@keys.command("revoke")
def revoke_key(key_id: str, as_json: JsonOpt = False) -> None:
    """Revoke an API key now."""
    call(lambda c: c.revoke_key(key_id))
    print_json({"id": key_id, "revoked": True}) if as_json else console.print(f"revoked {key_id}")
