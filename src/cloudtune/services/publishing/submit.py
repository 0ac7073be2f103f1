"""A submit's `publish`: checked, filled from the saved defaults and the environment, kept with
the job in its insert transaction (its own secrets sealed with the job's, one pending delivery
per target for a job this server publishes itself)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from cloudtune.domain.deliveries import DeliveryKind
from cloudtune.domain.principal import Principal
from cloudtune.domain.publishing import HubTarget, PublishSettings
from cloudtune.errors import InvalidInputError
from cloudtune.services.context import Context
from cloudtune.services.publishing.checks import parse_publish
from cloudtune.services.publishing.defaults import environment_token, load_defaults
from cloudtune.services.publishing.endpoints import require_public_endpoint
from cloudtune.store import deliveries as delivery_store


@dataclass(frozen=True, slots=True)
class JobPublish:
    """Where a job publishes. `settings` holds every secret it needs (for a provider's input,
    in memory only); `given` holds the secrets the request itself brought, sealed with the job.
    Secrets from the defaults or the environment are read again when the publish is made, so
    a token fixed in the defaults serves a retry."""

    settings: PublishSettings
    given: tuple[tuple[tuple[str | int, ...], Any], ...]
    from_defaults: bool
    # The submitter has `provider.manage`: the server's Hub token (saved or HF_TOKEN) may
    # serve any repository, and an S3 endpoint may be on a private network. Anyone else gets
    # the server's token for the saved defaults' repository only, and public endpoints.
    by_provider_manager: bool = False


def for_submit(ctx: Context, caller: Principal, raw: dict[str, Any] | None) -> JobPublish | None:
    """None: publish nowhere. A request without `publish` (or with null) takes the saved
    defaults; an object names every target the job publishes to (`{}` opts out of them)."""
    from_defaults = raw is None
    wanted = load_defaults(ctx) if from_defaults else parse_publish(raw)
    if wanted.empty:
        return None
    given = () if from_defaults else tuple(wanted.secrets())
    hub, s3 = wanted.hub, wanted.s3
    manager = caller.has("provider.manage")
    if hub is not None and not hub.token:
        hub = replace(hub, token=_server_token(load_defaults(ctx).hub, hub, manager=manager))
    if s3 is not None and not s3.has_keys:
        # A bucket's keys go only where they were saved for: never to an endpoint a submit
        # names, or anyone allowed to submit could collect them.
        raise InvalidInputError(
            "`publish.s3` needs `access_key_id` and `secret_access_key`",
            code="invalid_publish",
            field="publish.s3",
        )
    if s3 is not None and s3.endpoint_url and not manager and not from_defaults:
        saved_s3 = load_defaults(ctx).s3
        # The defaults' endpoint was chosen by someone who manages the providers.
        if saved_s3 is None or saved_s3.endpoint_url != s3.endpoint_url:
            require_public_endpoint(s3.endpoint_url)
    return JobPublish(PublishSettings(hub=hub, s3=s3), given, from_defaults, manager)


def may_use_server_token(saved: HubTarget | None, repo_id: str, *, anywhere: bool) -> bool:
    """The saved defaults' token and HF_TOKEN are the server's: they push to the repository
    the defaults name, or wherever someone who manages the providers says. Anyone else
    naming another repository (say, an admin's organisation) brings their own token."""
    return anywhere or (saved is not None and saved.repo_id == repo_id)


def _server_token(saved: HubTarget | None, hub: HubTarget, *, manager: bool) -> str:
    if not may_use_server_token(saved, hub.repo_id, anywhere=manager):
        raise InvalidInputError(
            "`publish.hub` names a repository other than the saved defaults' one: send a "
            "Hugging Face token that may write to it as `publish.hub.token`",
            code="invalid_publish",
            field="publish.hub.token",
        )
    token = (saved.token if saved else None) or environment_token()
    if not token:
        raise InvalidInputError(
            "`publish.hub` needs a Hugging Face token: send `publish.hub.token`, save one "
            "(PUT /api/cloud/publishing) or set HF_TOKEN on the server",
            code="invalid_publish",
            field="publish.hub.token",
        )
    return token


def plan_publish(
    session: Session, job_id: str, publish: JobPublish | None, *, at: datetime
) -> None:
    """In the job's insert transaction: a pending delivery for each target, made by the
    publish runner once the job has completed."""
    if publish is None:
        return
    origin = {
        "from_defaults": publish.from_defaults,
        "by_provider_manager": publish.by_provider_manager,
    }
    if publish.settings.hub is not None:
        settings = publish.settings.hub.public() | origin
        delivery_store.plan(session, job_id, DeliveryKind.HUB, at=at, settings=settings)
    if publish.settings.s3 is not None:
        settings = publish.settings.s3.public() | origin
        delivery_store.plan(session, job_id, DeliveryKind.S3, at=at, settings=settings)
