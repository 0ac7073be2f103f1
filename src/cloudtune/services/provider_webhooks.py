"""Status pushed by providers (Replicate's webhooks): verified on the raw body with the Standard
Webhooks scheme (±5 minutes), deduplicated on `webhook-id`, optionally limited to an IP
allowlist, then applied like a poll result."""

from __future__ import annotations

import ipaddress
import json
import logging
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from standardwebhooks.webhooks import Webhook

from cloudtune.domain.jobs import utcnow
from cloudtune.errors import AuthenticationError, InvalidInputError, PermissionDeniedError
from cloudtune.providers.base import ReceivesWebhooks
from cloudtune.services.context import Context
from cloudtune.services.reconciler import apply_provider_status
from cloudtune.store import jobs as job_store
from cloudtune.store import providers as provider_store

log = logging.getLogger(__name__)
DEDUPE_WINDOW = timedelta(days=2)


async def receive(
    ctx: Context, provider_name: str, *, body: bytes, headers: dict[str, str], client_ip: str
) -> dict[str, Any]:
    provider = ctx.providers.get(provider_name)
    if not isinstance(provider, ReceivesWebhooks):
        raise InvalidInputError(f"{provider_name} sends no webhooks", code="unknown_provider")
    config = ctx.provider_settings.config(provider_name) if ctx.provider_settings else {}
    _check_address(client_ip, config.get("webhook_allowed_ips") or [])
    if config.get("require_signature", True):
        secret = await provider.webhook_secret()
        try:
            Webhook(secret).verify(body, headers, json_parse=False)
        except Exception:  # the library raises several kinds for bad input; all mean "no"
            raise AuthenticationError(
                "webhook signature missing, invalid or outside the ±5 minute window",
                code="invalid_signature",
            ) from None
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInputError("the webhook body is not JSON", code="invalid_payload") from None
    if not isinstance(payload, dict):
        raise InvalidInputError("the webhook body is not a JSON object", code="invalid_payload")
    ref, status = provider.parse_webhook(payload)
    result = await ctx.in_thread(
        _apply, ctx, provider_name, ref, status, headers.get("webhook-id")
    )
    ctx.metrics.webhook_events.labels(provider_name, result["status"]).inc()
    return result


def _apply(
    ctx: Context, provider_name: str, ref: str, status: Any, webhook_id: str | None
) -> dict[str, Any]:
    with ctx.db.read() as session:
        job = job_store.find_by_provider_ref(session, provider_name, ref)
        seen = bool(webhook_id) and provider_store.webhook_seen(session, provider_name, webhook_id)
    if job is None:
        log.info("webhook for unknown %s prediction %s ignored", provider_name, ref)
        return {"status": "ignored", "reason": "unknown prediction"}
    if seen:
        return {"status": "duplicate", "job_id": job.job_id}
    # Applying is idempotent, so two copies racing past the check above do no harm; the id is
    # recorded after applying, so a failed apply can be delivered again.
    changed = apply_provider_status(ctx, job, status)
    if webhook_id:
        try:
            with ctx.db.write() as session:
                provider_store.claim_webhook(session, provider_name, webhook_id, utcnow())
                provider_store.forget_webhooks_before(session, utcnow() - DEDUPE_WINDOW)
        except IntegrityError:
            pass
    return {"status": "received", "job_id": job.job_id, "updated": changed}


def _check_address(client_ip: str, allowed: list[str]) -> None:
    if not allowed:
        return
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        raise PermissionDeniedError(
            "webhook from an unknown address", code="ip_not_allowed"
        ) from None
    if not any(address in ipaddress.ip_network(net, strict=False) for net in allowed):
        raise PermissionDeniedError(
            f"webhooks from {client_ip} are not allowed", code="ip_not_allowed"
        )
