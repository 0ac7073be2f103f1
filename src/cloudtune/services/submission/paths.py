"""Where a job may read and write: its dataset folders resolved and its output folder confined
by the caller's file access policy, before anything is scanned or written."""

from __future__ import annotations

from cloudtune.domain.jobs import JobType
from cloudtune.domain.principal import Principal
from cloudtune.domain.training import TrainingSpec
from cloudtune.providers.base import Provider, datasets_to_send
from cloudtune.services.datasets import resolve_dataset_paths
from cloudtune.services.file_access import FileAccessPolicy
from cloudtune.settings import Settings


def resolve_paths(
    settings: Settings, caller: Principal, spec: TrainingSpec, provider: Provider, job_id: str
) -> FileAccessPolicy:
    """Rewrites the spec's local dataset folders to their resolved paths and confines its
    output; answers the policy the scan must go on with."""
    policy = FileAccessPolicy.for_caller(settings, caller)
    resolve_dataset_paths(spec.dataloader, datasets_to_send(provider, spec), policy)
    policy.confine(spec, job_id=job_id, runs_here=runs_here(provider))
    return policy


def runs_here(provider: Provider) -> bool:
    return provider.job_type == JobType.LOCAL.value
