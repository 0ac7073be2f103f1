"""The data consent setting (`GET|PUT /api/cloud/data-consent/setting`): whether a submit may
upload local datasets to a provider. The reference server keeps it for its UI only; here the
submit enforces it (`check_upload`), so a script cannot go around it.

Kept in the provider settings table under the name `data_consent` (as the publishing
defaults are), so every replica reads the same mode. Reading takes any signed-in caller (the
submit dialog shows it); changing it takes `provider.manage`."""

from __future__ import annotations

from enum import StrEnum

from cloudtune.domain.documents import JsonObject
from cloudtune.domain.principal import Principal
from cloudtune.errors import InvalidInputError, PermissionDeniedError, unknown_fields_error
from cloudtune.services.context import Context
from cloudtune.store import providers as settings_store

ROW = "data_consent"  # its name in the provider settings table (no provider has it)


class ConsentMode(StrEnum):
    ASK = "ask"  # each submit that uploads says so: `upload_consent: true`
    ALLOW = "allow"
    DENY = "deny"  # nothing local is ever uploaded


# Scripts that submitted uploads before this setting existed keep working until an admin
# chooses otherwise (the reference server's default, `ask`, is never enforced there).
DEFAULT = ConsentMode.ALLOW
SETTING_PATH = "/api/cloud/data-consent/setting"


def load_mode(ctx: Context) -> ConsentMode:
    with ctx.db.read() as session:
        row = settings_store.get_settings(session, ROW)
    saved = (row.settings or {}).get("consent") if row is not None else None
    try:
        return ConsentMode(str(saved)) if saved is not None else DEFAULT
    except ValueError:
        return DEFAULT


def get_mode(ctx: Context, caller: Principal) -> ConsentMode:
    del caller  # any signed-in caller: resolving one is the route's part
    return load_mode(ctx)


def set_mode(ctx: Context, caller: Principal, body: JsonObject) -> ConsentMode:
    """Saves `{"consent": ...}`; 400 for any other value or field."""
    caller.require("provider.manage")
    if unknown := set(body) - {"consent"}:
        raise unknown_fields_error(unknown, accepted=("consent",))
    value = body.get("consent")
    try:
        mode = ConsentMode(value) if isinstance(value, str) else None
    except ValueError:
        mode = None
    if mode is None:
        shown = repr(value)[:40]
        raise InvalidInputError(
            f"Invalid consent value: {shown}; one of ask, allow, deny",
            code="invalid_setting",
            field="consent",
        )
    with ctx.db.write() as session:
        settings_store.save_settings(
            session, ROW, at=ctx.clock(), settings={"consent": mode.value}
        )
    return mode


def check_upload(mode: ConsentMode, provider: str, upload_consent: bool) -> None:
    """Refuses a submit that would upload local datasets to `provider` unless the mode allows
    it: never with `deny`, only with the submit's own `upload_consent` with `ask`."""
    if mode is ConsentMode.DENY:
        raise PermissionDeniedError(
            f"The data consent setting is `deny` (never upload): local datasets are not "
            f"uploaded to {provider}. Train on this machine (provider local), name datasets "
            f"the provider can reach, or have an admin change the setting "
            f"(PUT {SETTING_PATH})",
            code="upload_refused",
        )
    if mode is ConsentMode.ASK and not upload_consent:
        raise InvalidInputError(
            f"This submit would upload local datasets to {provider} and the data consent "
            f"setting is `ask`: send `upload_consent: true` to agree (the preview lists the "
            f"files)",
            code="consent_required",
            field="upload_consent",
        )
