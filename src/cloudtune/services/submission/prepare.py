"""Everything a submit checks and builds before a job row exists: the provider, the merged
spec, its paths, the dataset scan, the package for a provider that uploads, the price offer
and the cost estimate. A preview is the same work without the package."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from cloudtune.domain.hardware import HardwareProfile
from cloudtune.domain.principal import Principal
from cloudtune.domain.training import MASK, SecretPath, TrainingSpec, split_secrets
from cloudtune.errors import PayloadTooLargeError
from cloudtune.providers.base import (
    HasHardwareProfiles,
    Provider,
    archive_limit,
    datasets_to_send,
)
from cloudtune.services import costs, data_consent, publishing
from cloudtune.services.context import Context
from cloudtune.services.datasets import refuse_links_out, require_images
from cloudtune.services.packaging import DatasetScan, Package, scan_datasets
from cloudtune.services.packaging import package as package_datasets
from cloudtune.services.publishing import JobPublish
from cloudtune.services.submission.paths import resolve_paths, runs_here
from cloudtune.services.submission.request import (
    SubmitRequest,
    merge_request,
    refuse_unsupported,
)


@dataclass(frozen=True, slots=True)
class Prepared:
    job_id: str
    provider: Provider
    spec: TrainingSpec
    config_name: str | None
    offer: HardwareProfile | None = None
    scan: DatasetScan | None = None
    package: Package | None = None
    estimate_micros: int | None = None
    steps_per_second: float | None = None
    # The spec's secrets, kept apart: encrypted in the database, given to the trainer by its
    # environment or the provider's input, never in a file.
    secrets: tuple[tuple[SecretPath, Any], ...] = ()
    # Where the job publishes (services/publishing), its secrets apart from the spec's.
    publish: JobPublish | None = None


@dataclass(frozen=True, slots=True)
class DatasetSummary:
    id: str
    path: str
    archive_folder: str
    files: int
    images: int
    bytes: int


@dataclass(frozen=True, slots=True)
class ExcludedSummary:
    count: int
    examples: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FileSummary:
    path: str
    bytes: int


@dataclass(frozen=True, slots=True)
class Preview:
    """What a submit would send and cost. Bounded: counts and bytes for everything, names for
    the first files and for the first excluded files of each rule."""

    provider: str
    config_name: str | None
    model_family: str | None
    max_train_steps: int | None
    data_leaves_machine: bool
    # The data consent mode: with `deny` a submit that uploads is refused, with `ask` it needs
    # `upload_consent: true`.
    consent: str
    datasets: tuple[DatasetSummary, ...]
    files: int
    bytes: int
    excluded_files: tuple[str, ...]
    excluded: dict[str, ExcludedSummary]
    first_files: tuple[FileSummary, ...]
    upload_limit_bytes: int | None
    hardware_profile: str | None
    hardware_type: str | None
    price_per_hour_micros: int
    estimated_cost_micros: int | None
    warnings: tuple[str, ...]
    blocked: bool


def prepare(
    ctx: Context,
    caller: Principal,
    provider_name: str,
    request: SubmitRequest,
    *,
    package_data: bool = True,
) -> Prepared:
    refuse_unsupported(request)
    provider = ctx.providers.get(provider_name)
    publish = publishing.for_submit(ctx, caller, request.publish)
    merged = merge_request(ctx, caller, request)
    spec = merged.spec
    job_id = uuid.uuid4().hex
    policy = resolve_paths(ctx.settings, caller, spec, provider, job_id)
    provider.check(spec)
    offer = (
        provider.offer(request.hardware_profile)
        if isinstance(provider, HasHardwareProfiles)
        else None
    )
    local = datasets_to_send(provider, spec)
    limit = archive_limit(provider)
    if local and limit is not None and package_data:
        # Before the scan: a refused upload costs no walk of the datasets.
        data_consent.check_upload(
            data_consent.load_mode(ctx), provider.name, request.upload_consent
        )
    scan = package = None
    if local:
        scan = scan_datasets(local, policy, max_files=ctx.settings.max_dataset_files)
        require_images(scan)
        if runs_here(provider):
            refuse_links_out(scan)
    if scan is not None and limit is not None and package_data:
        if scan.total_bytes > limit:
            raise _too_large("the datasets", scan.total_bytes, limit)
        package = package_datasets(scan, ctx.settings.packages_dir)
        if package.size > limit:
            raise _too_large("the dataset archive", package.size, limit)
    estimate = speed = None
    if offer is not None:
        estimate, speed = costs.estimate_micros(
            ctx, offer, spec.model_family, spec.max_train_steps
        )
    _, _, secrets = split_secrets(spec.config, spec.dataloader)
    return Prepared(
        job_id=job_id,
        provider=provider,
        spec=spec,
        config_name=merged.config_name,
        offer=offer,
        scan=scan if limit is not None or not package_data else None,
        package=package,
        estimate_micros=estimate,
        steps_per_second=speed,
        secrets=tuple((path, value) for path, value in secrets if value != MASK),
        publish=publish,
    )


def preview(provider_name: str, prepared: Prepared, consent: str) -> Preview:
    provider, offer = prepared.provider, prepared.offer
    # Only local datasets are uploaded: a job naming none sends nothing from this machine.
    limit = archive_limit(provider)
    uploads = limit is not None and prepared.scan is not None
    scan = prepared.scan or DatasetScan()
    warnings: list[str] = []
    if uploads and limit is not None and scan.total_bytes > limit:
        warnings.append(f"{scan.total_bytes} bytes is over the {limit} byte upload limit")
    if uploads and consent == "deny":
        warnings.append("the data consent setting is `deny`: local datasets are never uploaded")
    return Preview(
        provider=provider_name,
        config_name=prepared.config_name,
        model_family=prepared.spec.model_family,
        max_train_steps=prepared.spec.max_train_steps,
        data_leaves_machine=uploads,
        consent=consent,
        datasets=tuple(
            DatasetSummary(d.id, d.path, d.archive_folder, d.files, d.images, d.bytes)
            for d in scan.datasets
        ),
        files=len(scan.files),
        bytes=scan.total_bytes,
        excluded_files=tuple(scan.excluded_names()),
        excluded={
            rule: ExcludedSummary(group.count, tuple(group.examples))
            for rule, group in scan.excluded.items()
        },
        first_files=tuple(FileSummary(f.arcname, f.size) for f in scan.first_files()),
        upload_limit_bytes=limit,
        hardware_profile=offer.name if offer else None,
        hardware_type=offer.display_name if offer else provider.hardware_type(),
        price_per_hour_micros=offer.price_per_hour_micros if offer else 0,
        estimated_cost_micros=prepared.estimate_micros,
        warnings=tuple(warnings),
        blocked=bool(warnings),
    )


def _too_large(what: str, size: int, limit: int) -> PayloadTooLargeError:
    mib = 1024 * 1024
    return PayloadTooLargeError(
        f"{what} come to {size / mib:.1f} MiB ({size} bytes), over the provider's upload limit "
        f"of {limit / mib:.0f} MiB ({limit} bytes); nothing was uploaded",
        size_bytes=size,
        limit_bytes=limit,
    )
