"""A provider's settings and the spending limit as one document, as the reference server keeps
them (`GET|PUT /api/cloud/providers/{provider}/config`). The limit stays the one of
`services.costs` (`/api/cloud/metrics/cost-limit`): these fields read and write it, for every
provider alike."""

from __future__ import annotations

from dataclasses import dataclass

from cloudtune.domain.costs import Period
from cloudtune.domain.documents import JsonObject
from cloudtune.domain.principal import Principal
from cloudtune.errors import InvalidInputError, PermissionDeniedError
from cloudtune.services import costs, providers
from cloudtune.services.context import Context

# The reference server's names of the limit's fields, and of ours they stand for.
COST_FIELDS = {
    "cost_limit_enabled": "enabled",
    "cost_limit_amount": "limit_usd",
    "cost_limit_period": "period",
    "cost_limit_action": "action",
}
# Its names of provider settings that we spell otherwise.
SETTING_ALIASES = {"hardware_profile": "default_hardware_profile"}


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    settings: providers.ProviderSettings
    cost_limit: costs.CostLimit | None  # None: the caller may not read the limit


def get_config(ctx: Context, caller: Principal, provider: str) -> ProviderConfig:
    """provider.manage, like our provider settings; the limit is shown to those who may read
    it (`costs.get_cost_limit` says who), and is none of the others' business."""
    settings = providers.get_provider_settings(ctx, caller, provider)
    try:
        limit: costs.CostLimit | None = costs.get_cost_limit(ctx, caller)
    except PermissionDeniedError:
        limit = None
    return ProviderConfig(settings, limit)


def update_config(
    ctx: Context, caller: Principal, provider: str, body: JsonObject
) -> ProviderConfig:
    """Every change is checked, settings and limit, before either is saved: a refused field
    leaves both as they were. A null limit field changes nothing (the reference server's
    reading); a null setting clears it, as in our own PUT."""
    caller.require("provider.manage")
    ctx.providers.get(provider)
    changes = providers.settings_in(body)
    settings: JsonObject = {}
    sent_as: dict[str, str] = {}  # our setting's name -> the field that set it
    limit: JsonObject = {}
    for key, value in changes.items():
        if key in COST_FIELDS:
            if value is not None:
                limit[COST_FIELDS[key]] = value
            continue
        ours = SETTING_ALIASES.get(str(key), str(key))
        if ours in settings and settings[ours] != value:
            first, second = sorted((str(key), sent_as[ours]))
            raise InvalidInputError(
                f"{first} and {second} differ; send one", code="invalid_setting"
            )
        settings[ours] = value
        sent_as[ours] = str(key)
    if limit:
        caller.require("cost.manage")
        _check_limit(limit)
    store = ctx.provider_settings
    assert store is not None
    if settings:
        store.update(caller, provider, settings)  # the limit, checked above, cannot fail now
    if limit:
        costs.update_cost_limit(ctx, caller, limit)
    return get_config(ctx, caller, provider)


def _check_limit(limit: JsonObject) -> None:
    """The checks `costs.update_cost_limit` makes, named by the fields as sent, made before
    anything is saved."""
    if "limit_usd" in limit:
        costs.money_micros(limit["limit_usd"], "cost_limit_amount")
    if "period" in limit and limit["period"] not in {p.value for p in Period}:
        raise InvalidInputError(
            "cost_limit_period must be daily, weekly or monthly", code="invalid_setting"
        )
    if "action" in limit and limit["action"] not in ("warn", "block"):
        raise InvalidInputError("cost_limit_action must be warn or block", code="invalid_setting")
    if "enabled" in limit and not isinstance(limit["enabled"], bool):
        raise InvalidInputError("cost_limit_enabled must be true or false", code="invalid_setting")
