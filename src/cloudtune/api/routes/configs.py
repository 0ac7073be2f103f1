"""/api/configs: named training configs in SimpleTuner's folder layout."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter, Response, status

from cloudtune.api.deps import CallerDep, CtxDep
from cloudtune.api.errors import route_errors
from cloudtune.api.schemas import (
    ConfigDeleteResponse,
    ConfigListItem,
    ConfigListResponse,
    ConfigMetadata,
    ConfigOut,
    ConfigValidation,
    NamedConfigBody,
    PutConfigBody,
)
from cloudtune.domain.training import config_text
from cloudtune.services import configs as config_service

router = APIRouter(prefix="/api/configs", tags=["configs"])


def _out(named: config_service.NamedConfig, message: str | None = None) -> ConfigOut:
    metadata = ConfigMetadata(
        name=named.name,
        description=named.description,
        model_family=config_text(named.config, "model_family"),
        model_type=config_text(named.config, "model_type"),
        model_flavour=config_text(named.config, "model_flavour"),
        lora_type=config_text(named.config, "lora_type"),
        created_at=named.created_at,
        modified_at=named.modified_at,
    )
    return ConfigOut(
        name=named.name,
        config=named.config,
        dataloader_config=named.dataloader_config,
        metadata=metadata,
        message=message,
        validation=ConfigValidation() if message else None,
    )


@router.get("", response_model=ConfigListResponse, responses=route_errors(401))
def list_configs(ctx: CtxDep, caller: CallerDep) -> ConfigListResponse:
    found = config_service.list_configs(ctx, caller)
    items = [ConfigListItem(**dataclasses.asdict(summary)) for summary in found]
    return ConfigListResponse(configs=items, total=len(items), count=len(items))


@router.post(
    "",
    response_model=ConfigOut,
    status_code=status.HTTP_201_CREATED,
    responses=route_errors(401, 409, 422),
)
def create_config(ctx: CtxDep, caller: CallerDep, body: NamedConfigBody) -> ConfigOut:
    named, _ = config_service.save_config(
        ctx,
        caller,
        body.name,
        body.config,
        body.dataloader_config,
        description=body.description,
        unknown_fields=body.model_extra or {},
        create_only=True,
    )
    return _out(named, f"Configuration '{named.name}' created")


@router.get("/{name}", response_model=ConfigOut, responses=route_errors(401, 404))
def get_config(ctx: CtxDep, caller: CallerDep, name: str) -> ConfigOut:
    return _out(config_service.get_config(ctx, caller, name))


@router.put(
    "/{name}",
    response_model=ConfigOut,
    responses={
        201: {"model": ConfigOut, "description": "Created: no config had that name."},
        **route_errors(401, 409, 422),
    },
)
def put_config(
    ctx: CtxDep, caller: CallerDep, name: str, body: PutConfigBody, response: Response
) -> ConfigOut:
    named, created = config_service.save_config(
        ctx,
        caller,
        name,
        body.config,
        body.dataloader_config,
        description=body.description,
        unknown_fields=body.model_extra or {},
        named_in_body=body.name,
    )
    if created:
        response.status_code = status.HTTP_201_CREATED
    return _out(named, f"Configuration '{name}' {'created' if created else 'updated'}")


@router.delete("/{name}", response_model=ConfigDeleteResponse, responses=route_errors(401, 404))
def delete_config(ctx: CtxDep, caller: CallerDep, name: str) -> ConfigDeleteResponse:
    config_service.delete_config(ctx, caller, name)
    return ConfigDeleteResponse(name=name, message=f"Configuration '{name}' deleted")
