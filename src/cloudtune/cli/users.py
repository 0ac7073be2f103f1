"""`cloudtune users ...`: accounts. `create-admin` and `add` write this machine's server
database directly (run them where the server runs, e.g. for the first admin); `list`,
`create`, `set-role`, `disable` and `enable` go through a running server's API."""

from __future__ import annotations

from typing import Annotated

import typer

from cloudtune.cli import common
from cloudtune.cli.common import JsonOpt, call, fail, print_json

app = typer.Typer(
    rich_markup_mode=None, help="User accounts and their roles.", no_args_is_help=True
)


def _create(username: str, email: str, password: str | None, role: str) -> None:
    from cloudtune.errors import CloudtuneError
    from cloudtune.providers.registry import ProviderRegistry
    from cloudtune.services import users
    from cloudtune.services.context import Context
    from cloudtune.services.tokens import TokenSigner
    from cloudtune.settings import get_settings
    from cloudtune.store.db import Database

    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    settings = get_settings()
    settings.ensure_folders()
    db = Database(settings.resolved_database_url)
    db.migrate()
    ctx = Context(
        settings=settings,
        db=db,
        providers=ProviderRegistry(settings, names=[]),
        tokens=TokenSigner.from_home(settings.home),
    )
    try:
        user = users.create_user(ctx, username=username, email=email, password=password, role=role)
    except CloudtuneError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(code=1) from None
    finally:
        db.dispose()
    typer.echo(f"created {role} {user.username} ({user.email})")


@app.command("create-admin")
def create_admin(
    username: Annotated[str, typer.Option(help="Login name.")],
    email: Annotated[str, typer.Option(help="E-mail address.")],
    password: Annotated[
        str | None, typer.Option(help="Password (prompted when left out).", envvar=None)
    ] = None,
) -> None:
    """Create an admin in this machine's server database (no server needed)."""
    _create(username, email, password, "admin")


@app.command("add")
def add(
    username: Annotated[str, typer.Option(help="Login name.")],
    email: Annotated[str, typer.Option(help="E-mail address.")],
    role: Annotated[str, typer.Option(help="viewer, researcher, lead or admin.")] = "researcher",
    password: Annotated[
        str | None, typer.Option(help="Password (prompted when left out).")
    ] = None,
) -> None:
    """Add a user in this machine's server database (no server needed)."""
    _create(username, email, password, role)


# -- through a running server's API (an admin's credential) ---------------------------------


@app.command("list")
def list_users(as_json: JsonOpt = False) -> None:
    """The server's users and their roles."""
    found = call(lambda c: c.users())
    if as_json:
        print_json(found)
        return
    common.table(
        ("id", "username", "email", "role", "active"),
        ((u.id, u.username, u.email, u.role, "yes" if u.is_active else "no") for u in found),
    )


@app.command("create")
def create_remote(
    username: Annotated[str, typer.Option(help="Login name.")],
    email: Annotated[str, typer.Option(help="E-mail address.")],
    role: Annotated[str, typer.Option(help="viewer, researcher, lead or admin.")] = "researcher",
    password: Annotated[
        str | None, typer.Option(help="Prompted when left out.", envvar=None)
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a user through the server's API (`add` writes the database directly instead)."""
    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    made = call(lambda c: c.create_user(username, email, password, role))
    print_json(made) if as_json else typer.echo(f"created {made.role} {made.username}")


def _user_id(name: str) -> str:
    for user in call(lambda c: c.users()):
        if name in (user.username, user.id) and user.id:
            return user.id
    raise fail(f"no user {name!r}")


@app.command("set-role")
def set_role(user: str, role: str, as_json: JsonOpt = False) -> None:
    """Give USER (username or id) another ROLE."""
    changed = call(lambda c: c.change_user(_user_id(user), role=role))
    print_json(changed) if as_json else typer.echo(f"{changed.username} is now {changed.role}")


@app.command("disable")
def disable(user: str, as_json: JsonOpt = False) -> None:
    """Disable USER: no more sign-in; sessions and keys end; jobs and files stay."""
    changed = call(lambda c: c.disable_user(_user_id(user)))
    print_json(changed) if as_json else typer.echo(f"{changed.username} disabled")


@app.command("enable")
def enable(user: str, as_json: JsonOpt = False) -> None:
    """Let a disabled USER sign in again."""
    changed = call(lambda c: c.change_user(_user_id(user), is_active=True))
    print_json(changed) if as_json else typer.echo(f"{changed.username} enabled")
