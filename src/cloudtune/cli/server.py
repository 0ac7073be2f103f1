"""`cloudtune server`: the only command that imports the server itself."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from cloudtune.settings import Settings


def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to bind (default 127.0.0.1).", envvar=None)
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind (default 8001).")] = None,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development).")] = False,
) -> None:
    """Start the API server (and the web UI) with the embedded database by default."""
    import uvicorn

    from cloudtune.settings import get_settings

    settings = get_settings()
    if host is not None:
        settings.host = host
    if port is not None:
        settings.port = port
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    _refuse_open_bind_without_admin(settings)
    typer.echo(
        f"cloudtune server on http://{settings.host}:{settings.port} (home {settings.home})"
    )
    if reload:
        uvicorn.run(
            "cloudtune.api.app:create_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            reload=True,
        )
        return
    from cloudtune.api.app import create_app

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
    )


def _refuse_open_bind_without_admin(settings: Settings) -> None:
    from cloudtune.services.auth import refuse_open_bind_without_admin
    from cloudtune.store.db import Database

    settings.ensure_folders()
    db = Database(settings.resolved_database_url)
    try:
        db.migrate()
        refuse_open_bind_without_admin(settings, db)
    finally:
        db.dispose()
