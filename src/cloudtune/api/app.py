"""The application factory: settings → database (migrated) → providers → reconciler → routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from cloudtune import __version__
from cloudtune.api.edge import Edge
from cloudtune.api.errors import install_error_handlers
from cloudtune.api.guards import parse_networks
from cloudtune.api.openapi import install_openapi
from cloudtune.api.routes import auth as auth_routes
from cloudtune.api.routes import (
    compat,
    configs,
    costs,
    data_consent,
    health,
    jobs,
    outputs,
    providers,
    publishing,
    storage,
    web,
    webhooks,
)
from cloudtune.errors import ConflictError
from cloudtune.providers.registry import ProviderRegistry
from cloudtune.services.cache import VersionedCache
from cloudtune.services.callers import is_loopback
from cloudtune.services.context import Context
from cloudtune.services.provider_settings import ProviderSettingsStore
from cloudtune.services.publishing import PublishRunner
from cloudtune.services.reconciler import Reconciler
from cloudtune.services.secrets import SecretBox
from cloudtune.services.tokens import TokenSigner
from cloudtune.services.users import admin_count, announce_setup_token
from cloudtune.settings import Settings, get_settings
from cloudtune.store import costs as cost_store
from cloudtune.store.db import Database

log = logging.getLogger(__name__)


def _job_counts(db: Database) -> dict[tuple[str, str], int]:
    with db.read() as session:
        return cost_store.counts_by_status_and_provider(session)


def refuse_open_bind_without_admin(settings: Settings, db: Database) -> None:
    """A server reachable from other machines must not start in no-users (everyone is admin)
    mode; `cloudtune server` turns the refusal into an exit with its message."""
    if is_loopback(settings.host) or admin_count(db) > 0:
        return
    raise ConflictError(
        f"refusing to listen on {settings.host}: there is no admin user, so anyone who "
        "can reach this address would be admin. Create one first:\n"
        "  cloudtune users create-admin --username admin --email you@example.com",
        code="admin_required",
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.ensure_folders()
        db = Database(settings.resolved_database_url)
        db.migrate()
        refuse_open_bind_without_admin(settings, db)
        secret_box = SecretBox.from_settings(settings)
        provider_settings = ProviderSettingsStore(settings, db, secret_box)
        ctx = Context(
            settings=settings,
            db=db,
            providers=ProviderRegistry(settings, config=provider_settings),
            tokens=TokenSigner.from_home(settings.home),
            provider_settings=provider_settings,
            secret_box=secret_box,
        )
        reconciler = Reconciler(ctx)
        publish_runner = PublishRunner(ctx)
        app.state.ctx = ctx
        app.state.reconciler = reconciler
        app.state.publish_runner = publish_runner
        # Rendered job lists and details: any committed write of this process ends every
        # entry, so a client reads its own writes; the TTL bounds the rest (ticking durations,
        # other replicas' writes).
        app.state.response_cache = VersionedCache(
            lambda: db.write_version, ttl=settings.response_cache_ttl_seconds, size=2048
        )
        app.state.metrics = ctx.metrics
        ctx.metrics.watch_jobs(lambda: _job_counts(db))
        await reconciler.start()
        await publish_runner.start()
        await ctx.in_thread(announce_setup_token, ctx)
        log.info("cloudtune %s ready on %s", __version__, settings.base_url)
        try:
            yield
        finally:
            await publish_runner.stop()
            await reconciler.stop()
            db.dispose()

    app = FastAPI(
        title="cloudtune",
        version=__version__,
        description="A self-hosted control plane for fine-tuning jobs on GPUs.",
        lifespan=lifespan,
        # We configure no OpenTelemetry; left on, FastAPI asks the global providers (reading
        # the environment) on every request, 5 % of a cached answer (bench/RESULTS.md).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_error_handlers(app)
    install_openapi(app)
    # Host/Origin, the client address, then the hot reads' fast path or the body limit, all
    # before routing and authentication.
    parse_networks(settings.trusted_proxies or ())  # a bad entry stops start-up, not a request
    app.add_middleware(Edge, settings=settings)
    for module in (
        health,
        auth_routes,
        jobs,
        outputs,
        configs,
        providers,
        costs,
        data_consent,
        webhooks,
        publishing,
        storage,
        compat,
        web,
    ):
        app.include_router(module.router)
    app.mount("/ui", web.ui_files, name="ui")
    return app
