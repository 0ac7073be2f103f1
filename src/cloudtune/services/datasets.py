"""Checks of a job's local datasets, before anything is accepted: each folder passes the file
access policy, and what it holds is scanned once (bounded) for the preview, the image check
and the package."""

from __future__ import annotations

from typing import Any

from cloudtune.errors import InvalidInputError
from cloudtune.services.file_access import DATASETS_URL, FileAccessPolicy
from cloudtune.services.packaging import IMAGE_SUFFIXES, DatasetScan


def resolve_dataset_paths(
    dataloader: list[dict[str, Any]], local: list[dict[str, Any]], policy: FileAccessPolicy
) -> None:
    """Replace each local dataset's path with its resolved, allowed folder."""
    for index, entry in enumerate(dataloader):
        if not any(entry is d for d in local):
            continue
        name = entry.get("id") or f"dataloader_config[{index}]"
        what = f"dataset '{name}': instance_data_dir"
        raw = _uploaded(str(entry["instance_data_dir"]), policy, what)
        entry["instance_data_dir"] = str(policy.dataset_folder(raw, what))


def _uploaded(raw: str, policy: FileAccessPolicy, what: str) -> str:
    """`s3://datasets/<name>`: the caller's dataset of that name in the built-in S3 endpoint's
    datasets bucket (under their own prefix), as a folder path."""
    if not raw.startswith(DATASETS_URL):
        return raw
    name = raw.removeprefix(DATASETS_URL).strip("/")
    parts = name.split("/")
    if not name or any(p in ("", ".", "..") for p in parts) or "\\" in name or "\0" in name:
        raise InvalidInputError(
            f"{what}: {raw!r} must name a dataset as s3://datasets/<name>",
            code="invalid_dataset",
        )
    assert policy.uploaded_datasets is not None
    return str(policy.uploaded_datasets.joinpath(*parts))


def require_images(scan: DatasetScan) -> None:
    for stats in scan.datasets:
        if not stats.images:
            raise InvalidInputError(
                f"dataset '{stats.id}': {stats.path} holds no images "
                f"({', '.join(sorted(IMAGE_SUFFIXES))})",
                code="dataset_empty",
                dataset=stats.id,
            )


# What a trainer on this machine would reach by itself if the dataset held it: the scan leaves
# these out of a package, but a local trainer reads the folder directly.
_LEAVES_THE_DATASET = (
    "symlink leaving the dataset",
    "symlinked folder",
    "not allowed by the file access policy",
    "server state folder",
)


def refuse_links_out(scan: DatasetScan) -> None:
    for rule in _LEAVES_THE_DATASET:
        group = scan.excluded.get(rule)
        if group:
            raise InvalidInputError(
                f"{group.examples[0]}: {rule}; a trainer on this machine reads the dataset folder "
                "itself, so it must not link outside it (remove the link, or copy the files in)",
                code="symlink_outside_dataset",
                path=group.examples[0],
            )
