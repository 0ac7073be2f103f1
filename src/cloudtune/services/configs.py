"""Named training configs, stored in SimpleTuner's folder layout:
`<home>/configs/<name>/config.json` and `<home>/configs/<name>/multidatabackend.json`,
so existing config folders can be dropped in as they are.

The database holds what the folder must not: who owns the config, and its secrets (hub token,
S3 keys), encrypted. Files on disk never hold a secret; answers show secrets as `***`, and a
`***` sent back on save keeps the stored secret.

Ownership follows the jobs' rules: a caller sees their own configs and shared ones (made with
no users, or dropped in by hand); `job.view.all` sees everyone's; editing or deleting someone
else's (or a shared one) needs `job.delete.all`. Someone else's config that the caller may not
see reads as unknown.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError

from cloudtune.domain.jobs import utcnow
from cloudtune.domain.principal import Principal
from cloudtune.domain.training import (
    MASK,
    SecretPath,
    build_spec,
    check_document,
    config_text,
    merge_secrets,
    split_secrets,
)
from cloudtune.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    unknown_fields_error,
)
from cloudtune.services.context import Context
from cloudtune.services.file_access import PathNotAllowedError
from cloudtune.store import configs as config_store
from cloudtune.store.tables import NamedConfigModel

# What a named config's body may carry (the name is in the path of a PUT).
CONFIG_FIELDS = ("name", "description", "config", "dataloader_config")
CONFIG_FILE = "config.json"
DATALOADER_FILE = "multidatabackend.json"
_MAX_FILE_BYTES = 4 * 1024 * 1024
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


@dataclass(frozen=True, slots=True)
class NamedConfig:
    name: str
    config: dict[str, Any]
    dataloader_config: list[Any]
    owner_user_id: str | None = None
    created_at: datetime | None = None
    modified_at: datetime | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class ConfigSummary:
    """What a list shows of a config without its values."""

    name: str
    description: str | None
    model_family: str | None
    model_type: str | None
    model_flavour: str | None
    lora_type: str | None
    created_at: datetime | None
    modified_at: datetime
    has_dataloader: bool


def list_configs(ctx: Context, caller: Principal) -> list[ConfigSummary]:
    caller.require("config.view")
    folder = ctx.settings.configs_dir
    if not folder.is_dir():
        return []
    names = sorted(p.name for p in folder.iterdir() if (p / CONFIG_FILE).is_file())
    with ctx.db.read() as session:
        rows = config_store.config_rows(session, names)
    visible = [n for n in names if _may_view(caller, rows.get(n))]
    summaries = (_summary(ctx, folder / n, rows.get(n)) for n in visible)
    return [s for s in summaries if s is not None]


def _summary(ctx: Context, folder: Path, row: NamedConfigModel | None) -> ConfigSummary | None:
    """None for a config removed or broken since the folder was listed: a list shows what can
    be read (GET of the one config names its problem)."""
    try:
        config, dataloader = _read_files(ctx, folder, folder.name)
        modified = _modified_at(folder)
    except (InvalidInputError, OSError):
        return None
    return ConfigSummary(
        name=folder.name,
        description=row.description if row is not None else None,
        model_family=config_text(config, "model_family"),
        model_type=config_text(config, "model_type"),
        model_flavour=config_text(config, "model_flavour"),
        lora_type=config_text(config, "lora_type"),
        created_at=row.created_at if row is not None else None,
        modified_at=modified,
        has_dataloader=bool(dataloader),
    )


def _modified_at(folder: Path) -> datetime:
    return datetime.fromtimestamp(folder.joinpath(CONFIG_FILE).stat().st_mtime, UTC)


def get_config(ctx: Context, caller: Principal, name: str) -> NamedConfig:
    """The config as its viewers see it: secrets masked."""
    caller.require("config.view")
    named, secrets = _load_visible(ctx, caller, name)
    merge_secrets(named.config, named.dataloader_config, [(p, MASK) for p, _ in secrets])
    return named


def load_for_submit(ctx: Context, caller: Principal, name: str) -> NamedConfig:
    """The config with its real secrets, for a job of the caller's (never shown)."""
    caller.require("config.view")
    named, secrets = _load_visible(ctx, caller, name)
    merge_secrets(named.config, named.dataloader_config, secrets)
    return named


def save_config(
    ctx: Context,
    caller: Principal,
    name: str,
    config: Any,
    dataloader_config: Any,
    *,
    description: str | None = None,
    unknown_fields: Iterable[str] = (),
    named_in_body: str | None = None,
    create_only: bool = False,
) -> tuple[NamedConfig, bool]:
    """Write a named config; returns it (secrets masked) and whether it was new. A description
    left out keeps the one stored ("" clears it)."""
    caller.require("config.edit")
    if unknown := list(unknown_fields):
        raise unknown_fields_error(unknown, accepted=CONFIG_FIELDS)
    if named_in_body is not None and named_in_body != name:
        raise InvalidInputError(
            f"the body names config {named_in_body!r} but the path {name!r}; send one name",
            code="invalid_config_name",
        )
    spec = build_spec(config, dataloader_config, max_depth=ctx.settings.json_max_depth)
    folder = _folder(ctx, name)
    now = utcnow()
    # Claim a new name with the row's primary key before writing anything, so two users
    # creating one name at once cannot both think it theirs.
    created = not (folder / CONFIG_FILE).is_file() and _claim(ctx, name, caller.user_id, now)
    with ctx.db.read() as session:
        row = config_store.get_config_row(session, name)
    if not created:
        if create_only:
            raise ConflictError(f"Config already exists: {name}", code="config_exists", name=name)
        if not _may_view(caller, row):
            raise ConflictError(
                f"the name {name!r} is taken by another user's config; choose another name",
                code="config_name_taken",
                name=name,
            )
        _require_manage(caller, row)
    public_config, public_dataloader, found = split_secrets(spec.config, spec.dataloader)
    secrets = _keep_masked(found, _secrets_of(ctx, row))
    folder.mkdir(parents=True, exist_ok=True)
    _write_json(folder / CONFIG_FILE, public_config)
    _write_json(folder / DATALOADER_FILE, public_dataloader)
    # A folder dropped in by hand has no row: it stays shared (no owner).
    owner = row.owner_user_id if row is not None else None
    if description is None and row is not None:
        description = row.description
    with ctx.db.write() as session:
        config_store.save_config_row(
            session,
            name,
            owner_user_id=owner,
            secrets_ciphertext=_seal(ctx, secrets),
            description=description or None,
            at=now,
        )
    merge_secrets(public_config, public_dataloader, [(p, MASK) for p, _ in secrets])
    first_saved = row.created_at if row is not None else now
    named = NamedConfig(
        name, public_config, public_dataloader, owner, first_saved, now, description or None
    )
    return named, created


def delete_config(ctx: Context, caller: Principal, name: str) -> None:
    caller.require("config.edit")
    folder = _folder(ctx, name)
    with ctx.db.read() as session:
        row = config_store.get_config_row(session, name)
    if not (folder / CONFIG_FILE).is_file() or not _may_view(caller, row):
        raise config_not_found(name)
    _require_manage(caller, row)
    shutil.rmtree(folder)
    with ctx.db.write() as session:
        config_store.delete_config_row(session, name)


def config_not_found(name: str) -> NotFoundError:
    return NotFoundError(
        f"Config not found: {name}. Save one with PUT /api/configs/{name} "
        '({"config": {...}, "dataloader_config": [...]}), or send the config inline in '
        "`config` instead of `config_name_to_load`.",
        code="config_not_found",
        name=name,
    )


# -- internals ------------------------------------------------------------------------------


def _claim(ctx: Context, name: str, owner: str | None, at: datetime) -> bool:
    try:
        with ctx.db.write() as session:
            config_store.claim_config_row(session, name, owner_user_id=owner, at=at)
    except IntegrityError:
        return False
    return True


def _may_view(caller: Principal, row: NamedConfigModel | None) -> bool:
    if row is None or row.owner_user_id is None or row.owner_user_id == caller.user_id:
        return True
    return caller.has("job.view.all")


def _require_manage(caller: Principal, row: NamedConfigModel | None) -> None:
    mine = row is not None and row.owner_user_id is not None
    if not (mine and row is not None and row.owner_user_id == caller.user_id):
        caller.require("job.delete.all")


def _load_visible(
    ctx: Context, caller: Principal, name: str
) -> tuple[NamedConfig, list[tuple[SecretPath, Any]]]:
    folder = _folder(ctx, name)
    with ctx.db.read() as session:
        row = config_store.get_config_row(session, name)
    if not (folder / CONFIG_FILE).is_file() or not _may_view(caller, row):
        raise config_not_found(name)
    config, dataloader = _read_files(ctx, folder, name)
    owner = row.owner_user_id if row else None
    created = row.created_at if row else None
    described = row.description if row else None
    named = NamedConfig(name, config, dataloader, owner, created, _modified_at(folder), described)
    return named, _secrets_of(ctx, row)


def _read_files(ctx: Context, folder: Path, name: str) -> tuple[dict[str, Any], list[Any]]:
    """A config folder's config and dataloader (SimpleTuner's layout)."""
    depth = ctx.settings.json_max_depth
    config = _read_json(folder / CONFIG_FILE, name, depth)
    if not isinstance(config, dict):
        raise InvalidInputError(
            f"config '{name}': {CONFIG_FILE} is not a JSON object", code="invalid_config"
        )
    dataloader: Any = []
    dataloader_path = _dataloader_path(folder, config, name)
    if dataloader_path.is_file():
        dataloader = _read_json(dataloader_path, name, depth)
        if isinstance(dataloader, dict) and isinstance(dataloader.get("datasets"), list):
            dataloader = dataloader["datasets"]
        if not isinstance(dataloader, list):
            raise InvalidInputError(
                f"config '{name}': {dataloader_path.name} is not a JSON array",
                code="invalid_config",
            )
    return config, dataloader


def _dataloader_path(folder: Path, config: dict[str, Any], name: str) -> Path:
    """The config's own multidatabackend.json, or the file its `data_backend_config` names,
    which must lie inside the config's folder (it is read with the server's rights)."""
    default = folder / DATALOADER_FILE
    if default.is_file():
        return default
    pointer = config.get("--data_backend_config") or config.get("data_backend_config")
    if not isinstance(pointer, str) or not pointer:
        return default
    candidate = Path(os.path.realpath(folder / Path(pointer).name))
    if not candidate.is_relative_to(Path(os.path.realpath(folder))):
        raise PathNotAllowedError(
            f"config '{name}': data_backend_config {pointer!r} is not allowed: it must be a "
            "file inside the config's own folder",
            field="data_backend_config",
        )
    return candidate


def _keep_masked(
    found: list[tuple[SecretPath, Any]], stored: list[tuple[SecretPath, Any]]
) -> list[tuple[SecretPath, Any]]:
    """A `***` sent back (what GET showed) keeps the stored secret at that place."""
    previous = dict(stored)
    kept = []
    for path, value in found:
        if value == MASK:
            if path in previous:
                kept.append((path, previous[path]))
        else:
            kept.append((path, value))
    return kept


def _secrets_of(ctx: Context, row: NamedConfigModel | None) -> list[tuple[SecretPath, Any]]:
    if row is None or not row.secrets_ciphertext:
        return []
    return ctx.secret_box.open_secrets(row.secrets_ciphertext)


def _seal(ctx: Context, secrets: list[tuple[SecretPath, Any]]) -> str | None:
    return ctx.secret_box.seal_secrets(secrets) if secrets else None


def _folder(ctx: Context, name: str) -> Path:
    valid = 0 < len(name) <= 128 and set(name) <= _NAME_CHARS and not name.startswith(".")
    if not valid:
        raise InvalidInputError(
            f"invalid config name {name!r}: use letters, digits, '.', '_' and '-' "
            "(at most 128, not starting with a dot)",
            code="invalid_config_name",
        )
    return ctx.settings.configs_dir / name


def _read_json(path: Path, name: str, max_depth: int) -> Any:
    try:
        if path.stat().st_size > _MAX_FILE_BYTES:
            raise ValueError(f"over {_MAX_FILE_BYTES} bytes")
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise InvalidInputError(
            f"config '{name}': {path.name} cannot be read as JSON ({exc})", code="invalid_config"
        ) from None
    check_document(f"config '{name}'", data, max_depth)
    return data


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(data, indent=2))
    tmp.replace(path)
