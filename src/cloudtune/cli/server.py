"""`cloudtune server`: the only command that imports the server itself."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import typer

from cloudtune.settings import Settings

# How uvicorn meets the network; the body limits live in cloudtune.api.limits.
UVICORN_OPTIONS: dict[str, Any] = {
    # X-Forwarded-* count only from CLOUDTUNE_TRUSTED_PROXIES (cloudtune.api.guards); uvicorn's
    # own handling believes any loopback peer.
    "proxy_headers": False,
    # h11 bounds the request line and headers (httptools reads headers without a bound).
    "http": "h11",
    "h11_max_incomplete_event_size": 64 * 1024,
    # An idle kept-alive connection is closed after this many seconds.
    "timeout_keep_alive": 5,
}


def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to bind (default 127.0.0.1).", envvar=None)
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind (default 8001).")] = None,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development).")] = False,
) -> None:
    """Start the server: the web UI at /, the REST API, and its docs at /docs."""
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
            **UVICORN_OPTIONS,
        )
        return
    from cloudtune.api.app import create_app

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        **UVICORN_OPTIONS,
    )


def _refuse_open_bind_without_admin(settings: Settings) -> None:
    """Checked before uvicorn starts, so the refusal is one clear message and exit status 1
    (the app's start-up checks it again, for servers started another way)."""
    from cloudtune.api.app import refuse_open_bind_without_admin
    from cloudtune.errors import CloudtuneError
    from cloudtune.store.db import Database
    from cloudtune.store.drivers import MissingDriverError

    settings.ensure_folders()
    try:
        db = Database(settings.resolved_database_url)
    except MissingDriverError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from None
    try:
        db.migrate()
        refuse_open_bind_without_admin(settings, db)
    except CloudtuneError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(code=1) from None
    finally:
        db.dispose()
