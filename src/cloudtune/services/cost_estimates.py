"""Prices and estimates before a submit: the hardware on offer, and what a config would cost on
it by the same estimator that fills a job's `estimated_cost_usd` (steps ÷ the speed learned
from finished jobs of the same model family and profile × the profile's price)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from cloudtune.domain.costs import format_usd
from cloudtune.domain.hardware import HardwareProfile
from cloudtune.domain.principal import Principal
from cloudtune.domain.training import TrainingSpec, build_spec, check_document
from cloudtune.errors import InvalidInputError, unknown_fields_error
from cloudtune.providers.base import HasHardwareProfiles
from cloudtune.services import costs, providers
from cloudtune.services.context import Context
from cloudtune.services.datasets import resolve_dataset_paths
from cloudtune.services.file_access import FileAccessPolicy
from cloudtune.services.packaging import scan_datasets
from cloudtune.services.submission.request import SubmitRequest, merge_request

BYTES_PER_MB = 1024 * 1024
# The fields an estimate request may carry, in the body or (the names only) in the query.
_BODY_FIELDS = frozenset(
    {"config", "dataloader_config", "config_name_to_load", "config_name", "hardware_profile"}
)


@dataclass(frozen=True, slots=True)
class HardwareOptions:
    profiles: list[HardwareProfile]
    default_profile: str | None  # the default provider's own default, None without one


@dataclass(frozen=True, slots=True)
class EstimateRequest:
    config_name: str | None = None
    config: dict[str, Any] | None = None
    dataloader_config: list[Any] | None = None
    hardware_profile: str | None = None


@dataclass(frozen=True, slots=True)
class CostEstimate:
    has_estimate: bool
    provider: str
    hardware_profile: str | None
    price_per_hour_micros: int | None
    estimated_cost_micros: int | None
    duration_seconds: float | None  # steps ÷ steps per second
    steps: int | None
    steps_per_second: float | None
    data_bytes: int | None  # the local datasets' files; None when no dataloader was named
    message: str


def hardware_options(ctx: Context, caller: Principal) -> HardwareOptions:
    profiles = providers.list_hardware(ctx, caller)
    default = None
    if ctx.settings.default_provider in ctx.providers.names():
        provider = ctx.providers.get(ctx.settings.default_provider)
        if isinstance(provider, HasHardwareProfiles):
            default = provider.offer(None).name
    return HardwareOptions(profiles=profiles, default_profile=default)


def _read_request(query: EstimateRequest, body: object) -> EstimateRequest:
    """The query's fields with the body's: a bare array is the dataloader (as the reference
    server takes it), an object names any of `_BODY_FIELDS`; anything else is refused."""
    if body is None:
        return query
    if isinstance(body, list):
        body = {"dataloader_config": body}
    if not isinstance(body, dict):
        raise InvalidInputError(
            "send the dataloader array, or an object with config, dataloader_config, "
            "config_name_to_load and hardware_profile",
            code="invalid_input",
        )
    if unknown := [str(k) for k in set(body) - _BODY_FIELDS]:
        raise unknown_fields_error(unknown, accepted=_BODY_FIELDS)
    config, dataloader = body.get("config"), body.get("dataloader_config")
    if config is not None and not isinstance(config, dict):
        raise InvalidInputError("config must be a JSON object", code="invalid_config")
    if dataloader is not None and not isinstance(dataloader, list):
        raise InvalidInputError("dataloader_config must be a JSON array", code="invalid_config")
    return EstimateRequest(
        config_name=_one("config name", query.config_name, _name(body)),
        config=config,
        dataloader_config=dataloader,
        hardware_profile=_one(
            "hardware_profile", query.hardware_profile, _text(body, "hardware_profile")
        ),
    )


def estimate_cost(
    ctx: Context,
    caller: Principal,
    provider_name: str | None,
    query: EstimateRequest,
    body: object = None,
) -> CostEstimate:
    """What the request's config would cost on the provider's profile. `body` is the
    dataloader array, or an object of `_BODY_FIELDS`, or None."""
    caller.require("job.submit")
    request = _read_request(query, body)
    name = provider_name or ctx.settings.default_provider
    provider = ctx.providers.get(name)
    offer = (
        provider.offer(request.hardware_profile)
        if isinstance(provider, HasHardwareProfiles)
        else None
    )
    spec = _spec(ctx, caller, request)
    named_data = spec.dataloader or request.dataloader_config is not None
    data_bytes = _data_bytes(ctx, caller, spec) if named_data else None
    steps = spec.max_train_steps
    price = offer.price_per_hour_micros if offer else None
    no_estimate = CostEstimate(
        has_estimate=False,
        provider=name,
        hardware_profile=offer.name if offer else None,
        price_per_hour_micros=price,
        estimated_cost_micros=None,
        duration_seconds=None,
        steps=steps,
        steps_per_second=None,
        data_bytes=data_bytes,
        message="",
    )
    if offer is None:
        return replace(no_estimate, message=f"provider '{name}' has no hardware prices")
    if not spec.config:
        return replace(
            no_estimate,
            message="Name the config to estimate (?config_name=NAME, or a body with config or "
            "config_name_to_load): the estimate is its --max_train_steps ÷ the steps per second "
            "learned from finished jobs × the hardware price",
        )
    if not steps:
        return replace(
            no_estimate, message="the config sets no --max_train_steps to estimate from"
        )
    estimate, speed = costs.estimate_micros(ctx, offer, spec.model_family, steps)
    if estimate is None:
        return replace(no_estimate, message="no training speed is known for this hardware profile")
    seconds = round(steps / speed, 3)
    return CostEstimate(
        has_estimate=True,
        provider=name,
        hardware_profile=offer.name,
        price_per_hour_micros=offer.price_per_hour_micros,
        estimated_cost_micros=estimate,
        duration_seconds=seconds,
        steps=steps,
        steps_per_second=speed,
        data_bytes=data_bytes,
        message=(
            f"{steps} steps at {speed:.3g} steps/s ({seconds:.0f} s) on {offer.display_name} "
            f"at {format_usd(offer.price_per_hour_micros)}/h: {format_usd(estimate)}"
        ),
    )


def _spec(ctx: Context, caller: Principal, request: EstimateRequest) -> TrainingSpec:
    if request.config is not None or request.config_name:
        submit = SubmitRequest(
            config=request.config,
            dataloader_config=request.dataloader_config,
            config_name_to_load=request.config_name,
        )
        return merge_request(ctx, caller, submit).spec
    # A dataloader alone: checked as a submit checks it, with no trainer args.
    depth = ctx.settings.json_max_depth
    check_document("dataloader_config", request.dataloader_config, depth)
    placeholder = {"--model_family": None}  # build_spec checks datasets only beside a config
    checked = build_spec(placeholder, request.dataloader_config, max_depth=depth)
    return TrainingSpec(config={}, dataloader=checked.dataloader)


def _data_bytes(ctx: Context, caller: Principal, spec: TrainingSpec) -> int:
    """The files of the local datasets a package would hold; each folder passes the caller's
    file access policy first (path_not_allowed otherwise), and the scan is bounded."""
    local = spec.local_datasets()
    if not local:
        return 0
    policy = FileAccessPolicy.for_caller(ctx.settings, caller)
    resolve_dataset_paths(spec.dataloader, local, policy)
    return scan_datasets(local, policy, max_files=ctx.settings.max_dataset_files).total_bytes


def _name(body: dict[str, Any]) -> str | None:
    return _one("config name", _text(body, "config_name"), _text(body, "config_name_to_load"))


def _text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidInputError(f"{key} must be a string", code="invalid_input")
    return value or None


def _one(what: str, first: str | None, second: str | None) -> str | None:
    if first and second and first != second:
        raise InvalidInputError(
            f"two different {what}s: {first!r} and {second!r}", code="invalid_input"
        )
    return first or second
