"""The provider protocol and the data that crosses it.

A provider never touches the database: services load a job, call the provider outside any
transaction, then apply what it answered through `store.jobs.switch_job_status`.

Contract for implementers:
- `submit` hands the job over and returns at once with a handle; it must not wait for training.
- `status` reports the provider's view; it may be called often and must be cheap. A provider
  whose jobs live in one replica answers `NotMine` for a job another replica holds, never a
  failure.
- `cancel` is idempotent: cancelling a finished or unknown job is not an error.
- `logs` returns text; `tail` limits it to the last N lines.
Optional abilities are separate small protocols below, checked with isinstance.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel

from cloudtune.domain.hardware import HardwareProfile
from cloudtune.domain.jobs import Job, JobStatus
from cloudtune.domain.publishing import PublishSettings
from cloudtune.domain.storage import JobStorageCredentials
from cloudtune.domain.training import TrainingSpec


@dataclass(frozen=True, slots=True)
class JobBundle:
    """Everything a provider needs to start a job's trainer."""

    spec: TrainingSpec
    webhook_url: str
    webhook_token: str
    # Where an uploading provider put the packaged datasets, and how the trainer finds them.
    dataset_url: str | None = None
    remote_dataloader: list[dict[str, Any]] | None = None
    hardware_profile: str | None = None
    # The spec's secrets with where they sat (domain.training.split_secrets); `spec` still
    # holds them in memory for a provider's input, but nothing may write them to a file.
    secrets: list[tuple[tuple[str | int, ...], Any]] = field(default_factory=list)
    # Where the job publishes, with its token and keys (in memory only): a provider whose
    # trainer publishes itself passes them on as its input; the local provider ignores them
    # (the server publishes a local job's outputs).
    publish: PublishSettings | None = None
    # The job's own key to the built-in S3 endpoint (in memory only), for a trainer that
    # writes its outputs or reads its data through it.
    storage: JobStorageCredentials | None = None


@dataclass(frozen=True, slots=True)
class ProviderHandle:
    """What a provider needs to find its job again, stored on the job row (never public)."""

    ref: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProviderStatus:
    status: JobStatus
    started_at: datetime | None = None
    completed_at: datetime | None = None
    error_message: str | None = None
    queue_position: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    outputs: list[Any] | None = None
    logs: str | None = None
    # Seconds the provider bills (GPU time), when it says.
    billed_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class NotMine:
    """A provider's answer about a job another replica holds (a local job started on another
    host or home): no verdict on the job, which the caller leaves alone."""

    owner: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderAccount:
    ok: bool
    detail: str
    hardware: str | None = None


class ProviderConfig(Protocol):
    """What a provider may read of its saved settings: never the database itself. `config` is
    the provider's settings as its own settings model validated them (see `registry`)."""

    def config(self, provider: str) -> BaseModel: ...

    def token(self, provider: str) -> str | None: ...


class Provider(Protocol):
    name: str
    job_type: str
    # Remote providers are asked less often while nothing changes (webhooks tell us sooner).
    poll_with_backoff: bool

    def check(self, spec: TrainingSpec) -> None:
        """Raise InvalidInputError if this provider cannot run the spec (before a job exists)."""

    def hardware_type(self) -> str | None: ...

    async def submit(self, job: Job, bundle: JobBundle) -> ProviderHandle: ...

    async def status(self, handle: ProviderHandle) -> ProviderStatus | NotMine: ...

    async def cancel(self, handle: ProviderHandle) -> None: ...

    async def logs(self, handle: ProviderHandle, tail: int | None) -> str: ...

    async def validate(self) -> ProviderAccount: ...


@runtime_checkable
class HasLogFile(Protocol):
    """A provider whose job logs are a file on this machine (followed incrementally)."""

    def log_path(self, handle: ProviderHandle) -> Path: ...


@dataclass(frozen=True, slots=True)
class RestoredJob:
    """An active job handed back to its provider when the server starts."""

    job: Job
    handle: ProviderHandle
    webhook_url: str
    webhook_token: str
    secrets: list[tuple[tuple[str | int, ...], Any]] = field(default_factory=list)
    storage: JobStorageCredentials | None = None


@runtime_checkable
class Pinned(Protocol):
    """A provider whose jobs live in one replica (its processes, its files): only that replica
    may judge or stop them. `holds` says whether this one does; others answer `NotMine`."""

    def holds(self, handle: ProviderHandle) -> bool: ...


@runtime_checkable
class Restorable(Protocol):
    """A provider with state in this process that must be rebuilt after a restart."""

    async def restore(self, jobs: Sequence[RestoredJob]) -> None: ...


@runtime_checkable
class RunsInBackground(Protocol):
    """A provider with its own background work; started and stopped with the server."""

    async def start(self, on_change: Callable[[], None]) -> None: ...

    async def stop(self) -> None: ...


@runtime_checkable
class Uploads(Protocol):
    """A provider that needs local datasets packaged and uploaded before a submit."""

    upload_limit_bytes: int

    async def upload(self, job: Job, archive: Path) -> str: ...


@runtime_checkable
class StagesThroughStorage(Protocol):
    """A provider whose trainer runs away from this machine and reaches it only through the
    built-in S3 endpoint with the job's key (`JobBundle.storage`): local datasets are packaged
    into one archive that the server stages under the job's prefix (`bundle.dataset_url` says
    where, `bundle.remote_dataloader` how the trainer finds them in it), and the trainer writes
    its outputs under `<prefix>output/`, which is the job's output folder on this machine
    (services/storage/staging.py)."""

    upload_limit_bytes: int
    stages_through_storage: bool


@runtime_checkable
class SeesOwnPaths(Protocol):
    """A provider whose trainers see folders of their own (a file system shared by a
    cluster's nodes): a local dataset on one of them is named as it is, never resolved,
    scanned or sent from this server."""

    def sees_path(self, path: str) -> bool: ...


def datasets_to_send(provider: object, spec: TrainingSpec) -> list[dict[str, Any]]:
    """The spec's local datasets that are this server's to resolve, scan and send: all of
    them but those the provider's trainers read where they are."""
    local = spec.local_datasets()
    if isinstance(provider, SeesOwnPaths):
        local = [
            d
            for d in local
            if not (
                isinstance(d.get("instance_data_dir"), str)
                and provider.sees_path(d["instance_data_dir"])
            )
        ]
    return local


def archive_limit(provider: object) -> int | None:
    """The archive size limit of a provider whose jobs take local datasets as one packaged
    archive; None for one whose trainer reads them where they are."""
    if isinstance(provider, (Uploads, StagesThroughStorage)):
        return provider.upload_limit_bytes
    return None


@runtime_checkable
class HasHardwareProfiles(Protocol):
    """A provider with named hardware profiles and prices."""

    def offer(self, profile: str | None) -> HardwareProfile: ...

    def profiles(self) -> list[HardwareProfile]: ...


@runtime_checkable
class ReceivesWebhooks(Protocol):
    """A provider that pushes status to us; `parse_webhook` maps a verified body."""

    async def webhook_secret(self) -> str: ...

    def parse_webhook(self, payload: dict[str, Any]) -> tuple[str, ProviderStatus]: ...

    def webhook_policy(self) -> WebhookPolicy:
        """Who may send webhooks, read from the provider's own settings."""
        ...


@dataclass(frozen=True, slots=True)
class WebhookPolicy:
    allowed_networks: tuple[str, ...] = ()  # empty: any address
    require_signature: bool = True


@dataclass(frozen=True, slots=True)
class ProviderVersion:
    """One version of the trainer a provider runs (newest first where listed)."""

    id: str
    created_at: str | None = None


@runtime_checkable
class HasVersions(Protocol):
    """A provider whose trainer comes in versions a user may pin (`version` setting)."""

    async def versions(self, profile: str | None) -> list[ProviderVersion]: ...


@runtime_checkable
class Discovers(Protocol):
    """A provider that can find the jobs it runs for us by our job ids, for jobs whose create
    answer never reached us (a crash or a lost answer between the provider's create and our
    write of its reference).

    `discover` asks the provider (several requests at most; no database) and returns a handle
    for each of `job_ids` it finds; ids it does not find are left out. Raises ProviderError
    when the provider cannot be asked."""

    async def discover(self, job_ids: Collection[str]) -> dict[str, ProviderHandle]: ...


@runtime_checkable
class Forgettable(Protocol):
    """A provider that keeps files for a job and removes them when the job is deleted."""

    def forget(self, handle: ProviderHandle) -> None: ...


# A file being fetched is written beside its destination under this suffix (hidden), then
# renamed; listings of output folders leave such names out.
PART_SUFFIX = ".cloudtune-part"


@dataclass(frozen=True, slots=True)
class FetchedFile:
    """One output file brought home: what was written, checked against what the server said."""

    size: int
    sha256: str


@runtime_checkable
class HasOutputs(Protocol):
    """A provider whose job outputs are files at links that expire: a job it says succeeded is
    not complete until they are home (services/outputs).

    `output_urls` picks the links to fetch from a status's outputs (no I/O). `may_fetch` says
    whether a link is one this provider fetches (its own file host): anything else in a
    trainer's output is never requested. `fetch_output` streams one link into `dest` (a temp
    file, then an atomic rename), calling `heartbeat` now and then while it works; it raises
    ProviderError, with a message fit for the user, once its bounded retries are spent."""

    def output_urls(self, outputs: Sequence[Any]) -> list[str]: ...

    def may_fetch(self, url: str) -> bool: ...

    async def fetch_output(
        self, url: str, dest: Path, *, heartbeat: Callable[[], Awaitable[None]]
    ) -> FetchedFile: ...


def tail_lines(text: str, tail: int | None) -> str:
    """The last `tail` lines of a log (all of it for None, nothing for 0), newline-ended."""
    if tail is None:
        return text
    lines = text.splitlines()[-tail:] if tail > 0 else []
    return "\n".join(lines) + ("\n" if lines else "")
