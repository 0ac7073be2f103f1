"""Named training configs, stored in SimpleTuner's folder layout:
`<home>/configs/<name>/config.json` and `<home>/configs/<name>/multidatabackend.json`,
so existing config folders can be dropped in as they are."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudtune.domain.principal import Principal
from cloudtune.domain.training import build_spec
from cloudtune.errors import ConflictError, InvalidInputError, NotFoundError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
CONFIG_FILE = "config.json"
DATALOADER_FILE = "multidatabackend.json"


@dataclass(frozen=True, slots=True)
class NamedConfig:
    name: str
    config: dict[str, Any]
    dataloader_config: list[dict[str, Any]]


def list_configs(configs_dir: Path, caller: Principal) -> list[str]:
    caller.require("config.view")
    if not configs_dir.is_dir():
        return []
    return sorted(p.name for p in configs_dir.iterdir() if (p / CONFIG_FILE).is_file())


def get_config(configs_dir: Path, caller: Principal, name: str) -> NamedConfig:
    caller.require("config.view")
    return load_config(configs_dir, name)


def load_config(configs_dir: Path, name: str) -> NamedConfig:
    folder = _folder(configs_dir, name)
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise NotFoundError(f"Config not found: {name}", code="config_not_found", name=name)
    config = _read_json(config_path, name)
    if not isinstance(config, dict):
        raise InvalidInputError(
            f"config '{name}': {CONFIG_FILE} is not a JSON object", code="invalid_config"
        )
    dataloader: Any = []
    dataloader_path = folder / DATALOADER_FILE
    if not dataloader_path.is_file():
        # SimpleTuner configs may point at their dataloader file instead.
        pointer = config.get("--data_backend_config") or config.get("data_backend_config")
        if isinstance(pointer, str) and pointer:
            candidate = Path(pointer).expanduser()
            dataloader_path = candidate if candidate.is_absolute() else folder / candidate
    if dataloader_path.is_file():
        dataloader = _read_json(dataloader_path, name)
        if isinstance(dataloader, dict) and isinstance(dataloader.get("datasets"), list):
            dataloader = dataloader["datasets"]
        if not isinstance(dataloader, list):
            raise InvalidInputError(
                f"config '{name}': {dataloader_path.name} is not a JSON array",
                code="invalid_config",
            )
    return NamedConfig(name=name, config=config, dataloader_config=dataloader)


def save_config(
    configs_dir: Path,
    caller: Principal,
    name: str,
    config: Any,
    dataloader_config: Any,
    *,
    create_only: bool = False,
) -> tuple[NamedConfig, bool]:
    """Write a named config; returns it and whether it was new."""
    caller.require("config.edit")
    spec = build_spec(config, dataloader_config)
    folder = _folder(configs_dir, name)
    created = not (folder / CONFIG_FILE).exists()
    if create_only and not created:
        raise ConflictError(f"Config already exists: {name}", code="config_exists", name=name)
    folder.mkdir(parents=True, exist_ok=True)
    _write_json(folder / CONFIG_FILE, spec.config)
    _write_json(folder / DATALOADER_FILE, spec.dataloader)
    return NamedConfig(name, spec.config, spec.dataloader), created


def delete_config(configs_dir: Path, caller: Principal, name: str) -> None:
    caller.require("config.edit")
    folder = _folder(configs_dir, name)
    if not (folder / CONFIG_FILE).is_file():
        raise NotFoundError(f"Config not found: {name}", code="config_not_found", name=name)
    shutil.rmtree(folder)


def _folder(configs_dir: Path, name: str) -> Path:
    if not _NAME.match(name) or name in (".", ".."):
        raise InvalidInputError(
            f"invalid config name {name!r}: use letters, digits, '.', '_' and '-' "
            "(at most 128, not starting with a dot)",
            code="invalid_config_name",
        )
    return configs_dir / name


def _read_json(path: Path, name: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInputError(
            f"config '{name}': {path.name} cannot be read as JSON ({exc})", code="invalid_config"
        ) from None


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)
