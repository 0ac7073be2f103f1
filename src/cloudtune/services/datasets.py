"""Checks and summaries of a job's local datasets, before anything is accepted."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudtune.errors import InvalidInputError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})


@dataclass(slots=True)
class DatasetSummary:
    id: str
    path: str
    files: int = 0
    images: int = 0
    bytes: int = 0
    excluded: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": self.path,
            "files": self.files,
            "images": self.images,
            "bytes": self.bytes,
            "excluded_files": self.excluded,
        }


def resolve_dataset_paths(dataloader: list[dict[str, Any]], local: list[dict[str, Any]]) -> None:
    """Make each local dataset's path absolute (relative paths are taken from the server's
    working folder, as SimpleTuner does) and check it is a readable folder with images."""
    for index, entry in enumerate(dataloader):
        if not any(entry is d for d in local):
            continue
        name = entry.get("id") or f"dataloader_config[{index}]"
        path = Path(str(entry["instance_data_dir"])).expanduser()
        path = path if path.is_absolute() else Path.cwd() / path
        entry["instance_data_dir"] = str(path)
        _check_folder(str(name), path)


def _check_folder(name: str, path: Path) -> None:
    if not path.exists():
        raise InvalidInputError(
            f"dataset '{name}': instance_data_dir {path} does not exist",
            code="dataset_not_found",
            dataset=name,
        )
    if not path.is_dir():
        raise InvalidInputError(
            f"dataset '{name}': instance_data_dir {path} is not a folder",
            code="invalid_dataset",
            dataset=name,
        )
    if not os.access(path, os.R_OK | os.X_OK):
        raise InvalidInputError(
            f"dataset '{name}': instance_data_dir {path} is not readable by the server",
            code="dataset_unreadable",
            dataset=name,
        )
    try:
        has_image = any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.rglob("*") if p.is_file())
    except OSError as exc:
        raise InvalidInputError(
            f"dataset '{name}': cannot read {path}: {exc.strerror or exc}",
            code="dataset_unreadable",
            dataset=name,
        ) from None
    if not has_image:
        raise InvalidInputError(
            f"dataset '{name}': {path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})",
            code="dataset_empty",
            dataset=name,
        )


def summarise(local: list[dict[str, Any]]) -> list[DatasetSummary]:
    summaries = []
    for index, entry in enumerate(local):
        path = Path(entry["instance_data_dir"])
        summary = DatasetSummary(id=str(entry.get("id") or f"dataset-{index}"), path=str(path))
        for file in sorted(path.rglob("*")):
            if file.is_file():
                summary.files += 1
                summary.bytes += file.stat().st_size
                summary.images += file.suffix.lower() in IMAGE_SUFFIXES
        summaries.append(summary)
    return summaries
