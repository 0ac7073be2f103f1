"""What a submit asks for: its fields, the ones refused by name, and the training spec made by
merging a named config with the request's own config."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from cloudtune.domain.principal import Principal
from cloudtune.domain.training import TrainingSpec, build_spec, check_document, normalise_config
from cloudtune.errors import InvalidInputError, unknown_fields_error
from cloudtune.services import configs as config_service
from cloudtune.services.context import Context
from cloudtune.services.publishing.checks import parse_publish


@dataclass(frozen=True, slots=True)
class SubmitRequest:
    config: dict[str, Any] | None = None
    dataloader_config: list[Any] | None = None
    config_name_to_load: str | None = None
    config_name: str | None = None
    tracker_run_name: str | None = None
    idempotency_key: str | None = None
    hardware_profile: str | None = None
    webhook_url: str | None = None
    publish: dict[str, Any] | None = None
    priority: int = 0
    max_cost_usd: float | None = None
    # The submitter agrees to upload local datasets (needed when the data consent mode is ask).
    upload_consent: bool = False
    # Fields the request carried that this server does not know: refused by name.
    unknown_fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class MergedRequest:
    spec: TrainingSpec
    config_name: str | None


def merge_request(ctx: Context, caller: Principal, request: SubmitRequest) -> MergedRequest:
    """The spec the job will run: the named config (if any), overridden key by key by the
    request's `config`; its dataloader unless the request brings one. Bounded in depth."""
    config: dict[str, Any] = {}
    dataloader: Any = request.dataloader_config
    config_name = request.config_name
    if request.config_name_to_load:
        named = config_service.load_for_submit(ctx, caller, request.config_name_to_load)
        config = normalise_config(named.config)
        if dataloader is None:
            dataloader = named.dataloader_config
        config_name = config_name or named.name
    if request.config is not None:
        # Both with `--` keys, so `output_dir` overrides the named config's `--output_dir`.
        config.update(normalise_config(request.config))
    if not config:
        raise InvalidInputError(
            "No configuration provided: send `config` or `config_name_to_load`",
            code="invalid_config",
        )
    depth = ctx.settings.json_max_depth
    check_document("config", config, depth)
    check_document("dataloader_config", dataloader, depth)  # before copying it, recursively
    spec = build_spec(config, copy.deepcopy(dataloader), max_depth=depth)
    return MergedRequest(spec=spec, config_name=config_name)


def refuse_unsupported(request: SubmitRequest) -> None:
    """Fields a submit may carry that this server does not act on yet: refused, so nobody
    believes a webhook will be called when it will not. `publish` is checked here, before any
    other work (its defaults and tokens are filled in by `services.publishing.for_submit`)."""
    if request.unknown_fields:
        raise unknown_fields_error(request.unknown_fields)
    if request.publish is not None:
        parse_publish(request.publish)
    if request.webhook_url not in (None, ""):
        raise InvalidInputError(
            "`webhook_url` is not supported by this server yet; submit without it (the "
            "trained model is written to the job's output folder)",
            code="unsupported_field",
            field="webhook_url",
        )
