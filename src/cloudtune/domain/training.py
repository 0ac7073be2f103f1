"""Training configs in SimpleTuner's formats: trainer args (`config.json`) and datasets
(`multidatabackend.json`). Keys may carry a leading `--` or not; we keep the `--` form on disk
because that is what SimpleTuner's own config files use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from cloudtune.errors import InvalidInputError

# Trainer args whose type we check before a job is accepted, so a typo fails at submit and not
# minutes later inside a trainer. (name, type, minimum, maximum)
_NUMERIC_ARGS: tuple[tuple[str, type, float, float], ...] = (
    ("max_train_steps", int, 1, 10_000_000),
    ("num_train_epochs", int, 0, 1_000_000),
    ("lora_rank", int, 1, 4096),
    ("lora_alpha", float, 0, 1_000_000),
    ("resolution", int, 8, 16384),
    ("checkpointing_steps", int, 0, 10_000_000),
    ("train_batch_size", int, 1, 65536),
    ("learning_rate", float, 0, 10),
    ("seed", int, 0, 2**63 - 1),
    ("num_samples", int, 0, 64),
)


def arg_name(key: str) -> str:
    return key[2:] if key.startswith("--") else key


def normalise_config(config: dict[str, Any]) -> dict[str, Any]:
    """Return the trainer args with `--` keys, refusing non-string keys and duplicates."""
    normalised: dict[str, Any] = {}
    for key, value in config.items():
        name = arg_name(str(key)).strip()
        if not name:
            raise InvalidInputError("config has an empty key", code="invalid_config")
        if f"--{name}" in normalised:
            raise InvalidInputError(
                f"config sets '{name}' twice (with and without '--')", code="invalid_config"
            )
        normalised[f"--{name}"] = value
    return normalised


@dataclass(frozen=True, slots=True)
class TrainingSpec:
    """A job's trainer args and datasets, checked for shape and types."""

    config: dict[str, Any]
    dataloader: list[dict[str, Any]]

    def get(self, name: str, default: Any = None) -> Any:
        return self.config.get(f"--{name}", default)

    @property
    def model_family(self) -> str | None:
        family = self.get("model_family")
        return str(family) if family is not None else None

    @property
    def max_train_steps(self) -> int | None:
        return self.get("max_train_steps")

    def local_datasets(self) -> list[dict[str, Any]]:
        return [
            d
            for d in self.dataloader
            if d.get("type", "local") == "local"
            and d.get("dataset_type", "image") not in ("text_embeds", "image_embeds")
            and not d.get("disabled", False)
        ]


def build_spec(config: Any, dataloader: Any) -> TrainingSpec:
    if not isinstance(config, dict) or not config:
        raise InvalidInputError("config must be a non-empty JSON object", code="invalid_config")
    normalised = normalise_config(config)
    for name, kind, low, high in _NUMERIC_ARGS:
        key = f"--{name}"
        if key in normalised and normalised[key] is not None:
            normalised[key] = _checked_number(name, normalised[key], kind, low, high)
    family = normalised.get("--model_family")
    if family is not None and (not isinstance(family, str) or not family.strip()):
        raise InvalidInputError("model_family must be a non-empty string", code="invalid_config")
    if dataloader is None:
        dataloader = []
    if not isinstance(dataloader, list):
        raise InvalidInputError("dataloader_config must be a JSON array", code="invalid_config")
    for index, entry in enumerate(dataloader):
        _check_dataset_entry(index, entry)
    return TrainingSpec(config=normalised, dataloader=[dict(d) for d in dataloader])


def _checked_number(name: str, value: Any, kind: type, low: float, high: float) -> int | float:
    if isinstance(value, bool):
        raise InvalidInputError(f"{name} must be a number, not {value!r}", code="invalid_config")
    if isinstance(value, str):
        try:
            value = float(value) if kind is float else int(value.strip())
        except ValueError:
            raise InvalidInputError(
                f"{name} must be {'a number' if kind is float else 'an integer'}, got {value!r}",
                code="invalid_config",
            ) from None
    if kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    if kind is int and not isinstance(value, int):
        raise InvalidInputError(f"{name} must be an integer, got {value!r}", code="invalid_config")
    if not isinstance(value, int | float) or math.isnan(value):
        raise InvalidInputError(f"{name} must be a number, got {value!r}", code="invalid_config")
    if not low <= value <= high:
        raise InvalidInputError(
            f"{name} must be between {low:g} and {high:g}, got {value!r}", code="invalid_config"
        )
    return value


def _check_dataset_entry(index: int, entry: Any) -> None:
    where = f"dataloader_config[{index}]"
    if not isinstance(entry, dict):
        raise InvalidInputError(f"{where} must be a JSON object", code="invalid_dataset")
    dataset_id = entry.get("id")
    if dataset_id is not None and not isinstance(dataset_id, str):
        raise InvalidInputError(f"{where}.id must be a string", code="invalid_dataset")
    dataset_type = entry.get("dataset_type", "image")
    backend = entry.get("type", "local")
    needs_dir = backend == "local" and dataset_type not in ("text_embeds", "image_embeds")
    if needs_dir and not entry.get("disabled", False):
        data_dir = entry.get("instance_data_dir")
        if not isinstance(data_dir, str) or not data_dir.strip():
            raise InvalidInputError(
                f"{where} ({dataset_id or 'unnamed'}) is a local dataset without "
                "instance_data_dir",
                code="invalid_dataset",
            )
    strategy = entry.get("caption_strategy")
    if strategy is not None and strategy not in (
        "textfile",
        "filename",
        "instanceprompt",
        "parquet",
        "csv",
        "huggingface",
    ):
        raise InvalidInputError(
            f"{where}.caption_strategy {strategy!r} is not one of textfile, filename, "
            "instanceprompt, parquet, csv, huggingface",
            code="invalid_dataset",
        )
