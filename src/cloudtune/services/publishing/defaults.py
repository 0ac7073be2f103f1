"""The saved publishing defaults (`GET|PUT /api/cloud/publishing`): applied to a submit that
names no `publish`. Kept in the provider settings table under the name `publishing`: the
targets in the clear, their secrets (a Hub token, a bucket's keys) sealed by the server's key.
Reading and changing them takes `provider.manage`."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from cloudtune.domain.documents import JsonObject
from cloudtune.domain.principal import Principal
from cloudtune.domain.publishing import (
    HubTarget,
    PublishSettings,
    S3Target,
    hub_from_public,
    s3_from_public,
)
from cloudtune.errors import InvalidInputError
from cloudtune.services.context import Context
from cloudtune.services.publishing.checks import parse_publish
from cloudtune.store import providers as settings_store

ROW = "publishing"  # its name in the provider settings table (no provider has it)
# Where huggingface_hub and the trainers look for a token, in its order.
TOKEN_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")


@dataclass(frozen=True, slots=True)
class HubDefaults:
    repo_id: str
    private: bool
    token_saved: bool


@dataclass(frozen=True, slots=True)
class S3Defaults:
    bucket: str
    prefix: str
    region: str | None
    endpoint_url: str | None
    keys_saved: bool


@dataclass(frozen=True, slots=True)
class PublishDefaults:
    hub: HubDefaults | None
    s3: S3Defaults | None
    # A token in the server's environment: used when neither the job nor these settings have one.
    hf_token_in_environment: bool


def environment_token() -> str | None:
    for name in TOKEN_VARIABLES:
        if value := os.environ.get(name):
            return value
    return None


def load_defaults(ctx: Context) -> PublishSettings:
    """The saved defaults with their secrets (for a submit or a publish; never shown)."""
    with ctx.db.read() as session:
        row = settings_store.get_settings(session, ROW)
        stored = dict(row.settings or {}) if row is not None else {}
        sealed = row.token_ciphertext if row is not None else None
    hub = stored.get("hub")
    s3 = stored.get("s3")
    public = PublishSettings(
        hub=hub_from_public(hub) if isinstance(hub, dict) else None,
        s3=s3_from_public(s3) if isinstance(s3, dict) else None,
    )
    return public.with_secrets(ctx.secret_box.open_secrets(sealed)) if sealed else public


def get_defaults(ctx: Context, caller: Principal) -> PublishDefaults:
    caller.require("provider.manage")
    return _shown(load_defaults(ctx))


def update_defaults(ctx: Context, caller: Principal, body: JsonObject) -> PublishDefaults:
    """The body replaces the defaults: a target left out or null is none. A Hub target sent
    without its token keeps the saved token; an S3 target without keys keeps the saved keys
    while its endpoint stays the same (keys never follow a target to another endpoint)."""
    caller.require("provider.manage")
    wanted = parse_publish(body)
    saved = load_defaults(ctx)
    hub, s3 = wanted.hub, wanted.s3
    if hub is not None and hub.token is None and saved.hub is not None:
        hub = replace(hub, token=saved.hub.token)
    if (
        s3 is not None
        and s3.access_key_id is None
        and s3.secret_access_key is None
        and saved.s3 is not None
        and saved.s3.endpoint_url == s3.endpoint_url
    ):
        s3 = replace(
            s3, access_key_id=saved.s3.access_key_id, secret_access_key=saved.s3.secret_access_key
        )
    if s3 is not None and bool(s3.access_key_id) != bool(s3.secret_access_key):
        raise InvalidInputError(
            "`s3.access_key_id` and `s3.secret_access_key` go together: send both",
            code="invalid_publish",
            field="s3",
        )
    chosen = PublishSettings(hub=hub, s3=s3)
    secrets = chosen.secrets()
    with ctx.db.write() as session:
        settings_store.save_settings(
            session,
            ROW,
            at=ctx.clock(),
            settings={
                "hub": hub.public() if hub else None,
                "s3": s3.public() if s3 else None,
            },
            token_ciphertext=ctx.secret_box.seal_secrets(secrets) if secrets else None,
            clear_token=not secrets,
        )
    return _shown(chosen)


def _shown(settings: PublishSettings) -> PublishDefaults:
    hub: HubTarget | None = settings.hub
    s3: S3Target | None = settings.s3
    return PublishDefaults(
        hub=HubDefaults(hub.repo_id, hub.private, bool(hub.token)) if hub else None,
        s3=S3Defaults(s3.bucket, s3.prefix, s3.region, s3.endpoint_url, s3.has_keys)
        if s3
        else None,
        hf_token_in_environment=environment_token() is not None,
    )
