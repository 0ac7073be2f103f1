"""Status pushed by providers (Replicate's webhooks): verified on the raw body with the Standard
Webhooks scheme (±5 minutes), deduplicated on `webhook-id`, optionally limited to an IP
allowlist, then applied like a poll result.

Anyone can post to a webhook, so a delivery is taken in three steps, cheapest first:

1. `admit`, before a byte of the body is read: the address allowlist; the signature headers
   present and well formed, the timestamp within ±5 minutes; a `webhook-id` already applied is
   answered as a duplicate; only then the signing secret (which may cost a call to the
   provider, at most one at a time: see the provider's `webhook_secret`).
2. `verified_payload`: the HMAC over the one buffer the body was read into, then one parse.
3. `apply`: the status, applied like a poll result.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import logging
import re
import time
from dataclasses import dataclass
from datetime import timedelta

import orjson
from sqlalchemy.exc import IntegrityError

from cloudtune.domain.documents import JsonObject
from cloudtune.domain.jobs import utcnow
from cloudtune.errors import (
    AuthenticationError,
    InvalidInputError,
    PermissionDeniedError,
    ProviderError,
)
from cloudtune.providers.base import ProviderStatus, ReceivesWebhooks
from cloudtune.services.context import Context
from cloudtune.services.provider_status import apply_provider_status
from cloudtune.store import jobs as job_store
from cloudtune.store import providers as provider_store

log = logging.getLogger(__name__)
DEDUPE_WINDOW = timedelta(days=2)
# Standard Webhooks' tolerance, past and future (reference/replicate-api.md §7).
TIMESTAMP_TOLERANCE_SECONDS = 300
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SECRET_PREFIX = "whsec_"


@dataclass(frozen=True, slots=True)
class Signature:
    """The signature headers of a delivery, checked for form and age (not yet verified)."""

    webhook_id: str
    timestamp: str
    candidates: tuple[bytes, ...]  # the decoded `v1` signatures


@dataclass(frozen=True, slots=True)
class WebhookOutcome:
    """What became of a delivery: `received` (applied; `updated` says whether the job
    changed), `duplicate` (one with its `webhook-id` was applied before) or `ignored`."""

    status: str
    job_id: str | None = None
    updated: bool | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Admission:
    """A delivery whose headers passed; its body may now be read."""

    provider_name: str
    provider: ReceivesWebhooks
    webhook_id: str | None
    signature: Signature | None  # None when the provider's `require_signature` is off
    key: bytes | None  # the HMAC key, with `signature`
    # An answer that needs no body (a delivery already applied); the body is not read.
    answer: WebhookOutcome | None = None


async def admit(
    ctx: Context, provider_name: str, *, headers: dict[str, str], client_ip: str
) -> Admission:
    """Everything that can be checked before the body is read, cheapest first."""
    provider = ctx.providers.get(provider_name)
    if not isinstance(provider, ReceivesWebhooks):
        raise InvalidInputError(f"{provider_name} sends no webhooks", code="unknown_provider")
    policy = provider.webhook_policy()
    _check_address(client_ip, list(policy.allowed_networks))
    signature = None
    if policy.require_signature:
        signature = _signature_headers(headers, time.time())
    webhook_id = headers.get("webhook-id") or None
    seen = False
    if webhook_id is not None:
        seen = await ctx.in_thread(_seen, ctx, provider_name, webhook_id)
    if seen:
        ctx.metrics.webhook_events.labels(provider_name, "duplicate").inc()
        duplicate = WebhookOutcome("duplicate")
        return Admission(provider_name, provider, webhook_id, signature, None, answer=duplicate)
    key = _secret_key(await provider.webhook_secret()) if signature else None
    return Admission(provider_name, provider, webhook_id, signature, key)


def verified_payload(admission: Admission, body: bytes | bytearray) -> JsonObject:
    """The body's JSON object, once its signature holds. `body` is read, never copied: the
    HMAC runs over it in place and the parser takes it as it is."""
    if admission.signature is not None and admission.key is not None:
        signature = admission.signature
        # Signed content: `{id}.{timestamp}.{raw body}`; the body is fed as it lies.
        head = f"{signature.webhook_id}.{signature.timestamp}.".encode()
        mac = hmac.new(admission.key, head, hashlib.sha256)
        mac.update(body)
        expected = mac.digest()
        if not any(hmac.compare_digest(expected, c) for c in signature.candidates):
            raise _invalid_signature()
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:  # also invalid UTF-8, and nesting past orjson's limit
        raise InvalidInputError("the webhook body is not JSON", code="invalid_payload") from None
    if not isinstance(payload, dict):
        raise InvalidInputError("the webhook body is not a JSON object", code="invalid_payload")
    return payload


async def apply(ctx: Context, admission: Admission, payload: JsonObject) -> WebhookOutcome:
    ref, status = admission.provider.parse_webhook(payload)
    result = await ctx.in_thread(
        _apply, ctx, admission.provider_name, ref, status, admission.webhook_id
    )
    ctx.metrics.webhook_events.labels(admission.provider_name, result.status).inc()
    return result


def _signature_headers(headers: dict[str, str], now: float) -> Signature:
    """401 unless all three headers are there, the timestamp is within the tolerance and at
    least one `v1` signature has the form of one; nothing here needs the secret."""
    webhook_id = headers.get("webhook-id") or ""
    timestamp = (headers.get("webhook-timestamp") or "").strip()
    signatures = headers.get("webhook-signature") or ""
    if not (webhook_id and timestamp and signatures) or not _TIMESTAMP.fullmatch(timestamp):
        raise _invalid_signature()
    if abs(now - int(timestamp)) > TIMESTAMP_TOLERANCE_SECONDS:
        raise _invalid_signature()
    candidates = []
    for entry in signatures.split():
        version, _, value = entry.partition(",")
        if version != "v1":
            continue
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        if len(decoded) == hashlib.sha256().digest_size:
            candidates.append(decoded)
    if not candidates:
        raise _invalid_signature()
    return Signature(webhook_id, timestamp, tuple(candidates))


def _secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_<base64>` secret (padding optional, as Standard Webhooks' own
    library reads it)."""
    text = secret.removeprefix(_SECRET_PREFIX)
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        key = b""
    if not key:  # an empty key would make every signature easy to forge
        raise ProviderError("the provider's webhook secret is not a whsec_ key")
    return key


def _invalid_signature() -> AuthenticationError:
    # One answer for every way a signature can be wrong: none tells a caller what to fix.
    return AuthenticationError(
        "webhook signature missing, invalid or outside the ±5 minute window",
        code="invalid_signature",
    )


def _seen(ctx: Context, provider_name: str, webhook_id: str) -> bool:
    with ctx.db.read() as session:
        return provider_store.webhook_seen(session, provider_name, webhook_id)


def _apply(
    ctx: Context, provider_name: str, ref: str, status: ProviderStatus, webhook_id: str | None
) -> WebhookOutcome:
    with ctx.db.read() as session:
        job = job_store.find_by_provider_ref(session, provider_name, ref)
        # Asked again: a copy may have been applied while this one's body arrived.
        seen = webhook_id is not None and provider_store.webhook_seen(
            session, provider_name, webhook_id
        )
    if job is None:
        log.info("webhook for unknown %s prediction %s ignored", provider_name, ref)
        return WebhookOutcome("ignored", reason="unknown prediction")
    if seen:
        return WebhookOutcome("duplicate", job_id=job.job_id)
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
    return WebhookOutcome("received", job_id=job.job_id, updated=changed)


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
