"""Training configs in SimpleTuner's formats: trainer args (`config.json`) and datasets
(`multidatabackend.json`). Keys may carry a leading `--` or not; we keep the `--` form on disk
because that is what SimpleTuner's own config files use.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
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


# Far above any real job; each dataset costs a folder scan at submit.
MAX_DATASETS = 256
MAX_CONFIG_KEYS = 2000


def arg_name(key: str) -> str:
    return key[2:] if key.startswith("--") else key


def config_text(config: dict[str, Any], name: str) -> str | None:
    """A string argument of a stored config, spelled with or without `--`."""
    value = config.get(f"--{name}", config.get(name))
    return value if isinstance(value, str) else None


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
        steps = self.get("max_train_steps")  # checked to be an int (or absent) on the way in
        return steps if isinstance(steps, int) else None

    def local_datasets(self) -> list[dict[str, Any]]:
        return [
            d
            for d in self.dataloader
            if d.get("type", "local") == "local"
            and d.get("dataset_type", "image") not in ("text_embeds", "image_embeds")
            and not d.get("disabled", False)
        ]


def build_spec(config: Any, dataloader: Any, *, max_depth: int = 64) -> TrainingSpec:
    if not isinstance(config, dict) or not config:
        raise InvalidInputError("config must be a non-empty JSON object", code="invalid_config")
    check_document("config", config, max_depth)
    check_document("dataloader_config", dataloader, max_depth)
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
    if len(dataloader) > MAX_DATASETS or len(normalised) > MAX_CONFIG_KEYS:
        raise InvalidInputError(
            f"a job takes at most {MAX_DATASETS} datasets and {MAX_CONFIG_KEYS} trainer args",
            code="invalid_config",
        )
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
    shorthand = entry.get("dataset")
    if shorthand is not None:
        # `"dataset": "<name>"`: a dataset uploaded to the built-in S3 endpoint's datasets
        # bucket, the same as `"instance_data_dir": "s3://datasets/<name>"`.
        if not isinstance(shorthand, str) or not shorthand.strip() or "instance_data_dir" in entry:
            raise InvalidInputError(
                f"{where}.dataset must be a dataset name, and not beside instance_data_dir",
                code="invalid_dataset",
            )
        entry["instance_data_dir"] = "s3://datasets/" + entry.pop("dataset").strip()
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


def check_document(what: str, value: Any, max_depth: int) -> None:
    """Refuse documents nested deeper than `max_depth` (deep nesting breaks serialisers and
    recursive code later: a job that could be written but never read back), and text that is
    not valid Unicode (a lone surrogate from a JSON escape cannot be encoded in any answer).
    Iterative, so the check itself cannot overflow the stack."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(what, item)
        elif isinstance(item, dict | list):
            if depth > max_depth:
                raise InvalidInputError(
                    f"{what} is nested more than {max_depth} levels deep", code="invalid_config"
                )
            if isinstance(item, dict):
                stack.extend((key, depth) for key in item if isinstance(key, str))
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)


def _check_text(what: str, text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(
            f"{what} holds text that is not valid Unicode (a lone surrogate escape)",
            code="invalid_config",
        ) from None


# -- secrets -------------------------------------------------------------------------------

_SECRET_WORDS = frozenset(
    {
        "token",
        "secret",
        "password",
        "passwd",
        "credential",
        "credentials",
        "auth",
        "apikey",
        "bearer",
    }
)
# Values that carry a secret whatever their key: URLs with a password or a signed query.
_SECRET_VALUE = re.compile(
    r"://[^/@\s:]+:[^/@\s]+@|[?&](sig|signature|token|key|x-amz-signature|access_token)=",
    re.IGNORECASE,
)


def looks_secret(key: Any, value: Any = None) -> bool:
    """Whether a config entry holds a secret: by its key (hub_token, aws_secret_access_key,
    api_key, wandbApiKey, webhook auth, any `*_key`, a webhook URL...) or by its value (a URL
    with a password or a signature)."""
    raw = arg_name(str(key))
    # camelCase and kebab-case split into words like snake_case.
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", raw).lower().replace("-", "_")
    words = set(re.split(r"[^a-z0-9]+", name))
    by_key = (
        bool(words & _SECRET_WORDS)
        or name == "key"
        or name.endswith("_key")
        or "access_key" in name
        or "webhook_url" in name
    )
    return by_key or (isinstance(value, str) and bool(_SECRET_VALUE.search(value)))


def mask_secrets(value: Any) -> Any:
    """A copy with every secret's value shown as `***`."""
    if isinstance(value, dict):
        return {k: MASK if looks_secret(k, v) and v else mask_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    return value


# Where a secret sat: ("config" | "dataloader", then keys and list indexes down to it).
SecretPath = tuple[str | int, ...]
MASK = "***"


def split_secrets(
    config: dict[str, Any], dataloader: list[Any]
) -> tuple[dict[str, Any], list[Any], list[tuple[SecretPath, Any]]]:
    """Copies of config and dataloader without their secrets, and the secrets with where they
    sat, so that files on disk never hold them and `merge_secrets` can put them back."""
    found: list[tuple[SecretPath, Any]] = []
    public_config = _without_secrets(config, ("config",), found)
    public_dataloader = _without_secrets(dataloader, ("dataloader",), found)
    return public_config, public_dataloader, found


def _without_secrets(value: Any, where: SecretPath, found: list[tuple[SecretPath, Any]]) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            # A `***` (what answers show) is kept as such: the caller means "unchanged".
            if looks_secret(key, item) and item not in (None, "") and not isinstance(item, bool):
                found.append(((*where, key), item))
            else:
                out[key] = _without_secrets(item, (*where, key), found)
        return out
    if isinstance(value, list):
        return [_without_secrets(item, (*where, i), found) for i, item in enumerate(value)]
    return value


def merge_secrets(
    config: dict[str, Any], dataloader: list[Any], secrets: list[tuple[SecretPath, Any]]
) -> None:
    """Put secrets back where `split_secrets` found them (in place); a secret whose place no
    longer exists is dropped."""
    roots: dict[str, Any] = {"config": config, "dataloader": dataloader}
    for path, value in secrets:
        if not path or path[0] not in roots:
            continue
        node = roots[str(path[0])]
        for step in path[1:-1]:
            node = _child(node, step)
            if node is None:
                break
        if isinstance(node, dict):
            node[path[-1]] = value
        elif isinstance(node, list) and isinstance(path[-1], int) and path[-1] < len(node):
            node[path[-1]] = value


def _child(node: Any, step: str | int) -> Any:
    if isinstance(node, dict):
        return node.get(step)
    if isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
        return node[step]
    return None


# -- paths ---------------------------------------------------------------------------------

# Keys whose values a trainer writes to. Everything else path-like is read.
_WRITE_KEYS = frozenset({"output_dir", "logging_dir", "cache_dir"})
_PATH_SUFFIXES = (
    "_dir",
    "_path",
    "_file",
    "_folder",
    "_library",
    "_name_or_path",
    "_config",
    "_checkpoint",
)
# Path-valued keys whose names do not say so.
_READ_KEYS = frozenset(
    {"resume_from_checkpoint", "init_lora", "data_backend_config", "path", "paths", "file"}
)


@dataclass(frozen=True, slots=True)
class PathField:
    """One value of a config or dataloader entry that names a file or folder."""

    container: dict[str, Any] | list[Any]
    key: str | int
    value: str
    name: str  # the key it sits under, lower case, without `--`
    writes: bool

    @property
    def label(self) -> str:
        return self.name


def path_fields(spec: TrainingSpec) -> Iterator[PathField]:
    """Every path a trainer would open, in dicts and lists at any depth, except the config's
    `--output_dir` (the job's output folder, checked on its own)."""
    yield from _path_fields_of(spec.config, "", top=True)
    yield from _path_fields_of(spec.dataloader, "dataloader_config")


def _path_fields_of(
    node: dict[str, Any] | list[Any], parent: str, *, top: bool = False
) -> Iterator[PathField]:
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        if top and key == "--output_dir":
            continue
        # Names compare in lower case: a trainer's own parsing may not care about case.
        name = arg_name(key).lower() if isinstance(key, str) else parent
        if isinstance(value, dict | list):
            yield from _path_fields_of(value, name)
            continue
        if not isinstance(value, str) or not value.strip():
            continue
        if name in _WRITE_KEYS or name.startswith("cache_dir"):
            yield PathField(node, key, value, name, writes=True)
        elif (name in _READ_KEYS or name.endswith(_PATH_SUFFIXES)) and looks_local(value):
            yield PathField(node, key, value, name, writes=False)


def looks_local(value: str) -> bool:
    """A local path rather than a hub id (`org/model`) or a keyword (`latest`): one that starts
    from the root, a home folder or the current folder, or climbs with `..` anywhere. Other
    relative values resolve inside the job's own run folder, the trainer's working folder."""
    if value.startswith(("/", "~", "./", "\\")) or value in (".", ".."):
        return True
    return ".." in re.split(r"[/\\]", value)
