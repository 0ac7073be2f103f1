"""`cloudtune users ...`: manage accounts on this server's database (run where the server runs)."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(help="Create user accounts in this server's database.")


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
    """Create an admin account."""
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
    """Add a user with a role."""
    _create(username, email, password, role)
