"""Runs jobs on a Ray cluster through its Jobs REST API: Ray schedules, we orchestrate.

A job is one Ray job whose `submission_id` is our job id (a retried submit cannot start a
second one: Ray refuses the id). Its entrypoint is `cloudtune.trainer.remote`, in a working
folder holding its config and dataloader (packages.py); it reads the packaged datasets from
this server's built-in S3 endpoint and writes its outputs back there with the job's own key
(`StagesThroughStorage`), so nothing needs a disk shared with the cluster. Progress arrives
through the trainer webhook; status and logs are read from Ray on each poll, and the logs are
kept in our database, so they outlive Ray's record of the job.

What Ray is given for a job is visible to whoever may read the cluster's dashboard: the
job's storage key and webhook token ride in its runtime environment. Both reach only this job
and stop working once it ends; a config's own secrets are refused rather than sent."""

from __future__ import annotations

import logging
import math
import shlex
from collections.abc import Awaitable, Collection
from datetime import UTC, datetime
from typing import Any, TypeVar

from cloudtune.domain.costs import usd_to_micros
from cloudtune.domain.hardware import HardwareProfile
from cloudtune.domain.jobs import Job, JobStatus, JobType
from cloudtune.domain.training import TrainingSpec, looks_local, path_fields, split_secrets
from cloudtune.errors import (
    InvalidInputError,
    ProviderError,
    ProviderUnavailableError,
    UnconfirmedSubmitError,
)
from cloudtune.providers.base import (
    JobBundle,
    ProviderAccount,
    ProviderConfig,
    ProviderHandle,
    ProviderStatus,
    datasets_to_send,
    tail_lines,
)
from cloudtune.providers.ray import packages
from cloudtune.providers.ray.client import RayError, RayJobsClient, SubmissionExists
from cloudtune.providers.ray.settings import RaySettings
from cloudtune.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

STATUSES = {
    "PENDING": JobStatus.QUEUED,
    "RUNNING": JobStatus.RUNNING,
    "SUCCEEDED": JobStatus.COMPLETED,
    "FAILED": JobStatus.FAILED,
    "STOPPED": JobStatus.CANCELLED,
}
PROFILE = "ray"
# The archive of a job's datasets is staged on this server and fetched by one node: its
# limit is the node's scratch space, not an upload API's.
ARCHIVE_LIMIT = 50 * 1024**3
METADATA_KEY = "cloudtune_job_id"
# The trainer prints its reason for failing on a line of its own (trainer/remote.py).
_REASON_PREFIX = "cloudtune: "
MAX_ERROR = 1000


class RayProvider:
    name = "ray"
    job_type = JobType.CLOUD.value
    # Ray sends no webhooks: a quiet job is still asked every pass, or its end shows late.
    poll_with_backoff = False
    upload_limit_bytes = ARCHIVE_LIMIT
    stages_through_storage = True
    description = "Runs jobs on your Ray cluster through its Jobs API"

    def __init__(self, settings: Settings, config: ProviderConfig) -> None:
        self._settings = settings
        self._config = config
        self._client: RayJobsClient | None = None
        self._client_key: tuple[str, str, str | None] | None = None

    # -- the Provider protocol --------------------------------------------------------------

    def check(self, spec: TrainingSpec) -> None:
        self._address()  # a clear 400 before anything is packaged or written
        if spec.model_family is None:
            raise InvalidInputError(
                "config lacks model_family (`reference`, or a SimpleTuner family such as flux)",
                code="invalid_config",
            )
        _, _, secrets = split_secrets(spec.config, spec.dataloader)
        if secrets:
            where = ", ".join(".".join(str(p) for p in path[1:]) for path, _ in secrets[:5])
            raise InvalidInputError(
                f"the config holds secrets ({where}); a Ray cluster shows every job's settings "
                "to whoever reads its dashboard, so they are not sent: publish through the "
                "submit's `publish` settings instead (the server publishes a Ray job's outputs)",
                code="invalid_config",
            )
        self._check_node_paths(spec)

    def _check_node_paths(self, spec: TrainingSpec) -> None:
        """Paths a job names are opened on the nodes, which may share disks with this server
        or with other jobs: a local-looking one (absolute, `~`, `./`, `..`) must be under
        `cluster_data_roots`. Folders this server sends are not the nodes' (their place in the
        archive replaces them); plain relative paths stay inside the job's scratch folder."""
        own = self._own()
        sent = {id(entry) for entry in datasets_to_send(self, spec)}
        for found in path_fields(spec):
            if id(found.container) in sent and found.key == "instance_data_dir":
                continue
            if not looks_local(found.value):
                continue  # a hub id, a keyword, or a folder inside the job's own one
            if not own.sees(found.value):
                roots = ", ".join(own.cluster_data_roots) or "none set"
                raise InvalidInputError(
                    f"{found.label} {found.value[:200]!r} names a path on the Ray nodes "
                    f"outside the folders they share for jobs (cluster_data_roots: {roots}); "
                    "use a path under one of them, or a plain relative path (inside the "
                    "job's own folder on the node)",
                    code="path_not_allowed",
                    field=found.label,
                )

    def hardware_type(self) -> str | None:
        return self.offer(None).display_name

    def offer(self, profile: str | None) -> HardwareProfile:
        if profile not in (None, "", PROFILE):
            raise InvalidInputError(
                f"the ray provider runs on what its settings ask of the cluster; "
                f"hardware_profile '{profile}' is not one (use '{PROFILE}')",
                code="invalid_hardware_profile",
            )
        own = self._own()
        gpus = math.ceil(own.entrypoint_num_gpus)
        label = own.gpu_label or own.accelerator_type or ("GPU" if gpus else None)
        return HardwareProfile(
            PROFILE,
            self.name,
            label,
            gpus,
            None,
            usd_to_micros(own.price_per_hour_usd),
            20.0 if gpus else 5.0,
        )

    def profiles(self) -> list[HardwareProfile]:
        return [self.offer(None)]

    async def submit(self, job: Job, bundle: JobBundle) -> ProviderHandle:
        own = self._own()
        client = self._api()
        body = await self._submission(client, own, job, bundle)
        try:
            await client.submit(body)
        except SubmissionExists:
            # A retry of a submit whose answer we lost: Ray has the job; make sure it is ours.
            found = await self._guard(client.job(job.job_id), "submit")
            if found is None or _tagged(found) != job.job_id:
                raise ProviderError(
                    f"ray: the cluster has a job {job.job_id} that cloudtune did not submit",
                    provider=self.name,
                ) from None
        except RayError as exc:
            if exc.status is None:
                raise UnconfirmedSubmitError(
                    f"ray: the cluster did not answer the submit ({exc.detail})",
                    provider=self.name,
                ) from None
            raise _provider_error("submit", exc) from None
        return ProviderHandle(ref=job.job_id, data={"ray_submission_id": job.job_id})

    async def status(self, handle: ProviderHandle) -> ProviderStatus:
        client = self._api()
        info = await self._guard(client.job(handle.ref), "status")
        if info is None:
            return ProviderStatus(
                status=JobStatus.FAILED,
                error_message="the Ray cluster no longer knows this job (deleted there, or "
                "the cluster was restarted)",
            )
        status = STATUSES.get(str(info.get("status")))
        if status is None:
            raise ProviderError(
                f"ray: unknown job status {str(info.get('status'))[:40]!r}", provider=self.name
            )
        logs = await self._guard(client.logs(handle.ref), "logs")
        started, ended = _time(info.get("start_time")), _time(info.get("end_time"))
        billed = None
        if started is not None and status != JobStatus.QUEUED:
            billed = max(0.0, ((ended or datetime.now(UTC)) - started).total_seconds())
        return ProviderStatus(
            status=status,
            started_at=started,
            completed_at=ended if status.is_terminal else None,
            error_message=_error(info, logs) if status == JobStatus.FAILED else None,
            logs=logs,
            billed_seconds=billed,
        )

    async def cancel(self, handle: ProviderHandle) -> None:
        await self._guard(self._api().stop(handle.ref), "cancel")

    async def logs(self, handle: ProviderHandle, tail: int | None) -> str:
        text = await self._guard(self._api().logs(handle.ref), "logs")
        return tail_lines(text or "", tail)

    async def validate(self) -> ProviderAccount:
        try:
            client = self._api()
            version = await client.version(once=True)
            nodes = [n for n in await client.nodes() if n.get("state") == "ALIVE"]
        except InvalidInputError as exc:
            return ProviderAccount(ok=False, detail=exc.detail)
        except RayError as exc:
            return ProviderAccount(ok=False, detail=f"the Ray cluster did not answer: {exc}")
        totals: dict[str, float] = {}
        for node in nodes:
            resources = node.get("resources_total")
            for resource, amount in (resources if isinstance(resources, dict) else {}).items():
                if isinstance(amount, int | float) and math.isfinite(amount):
                    totals[str(resource)] = totals.get(str(resource), 0.0) + float(amount)
        gpus = totals.get("GPU", 0.0)
        kinds = sorted(r.split(":", 1)[1] for r in totals if r.startswith("accelerator_type:"))
        ray_version = str(version.get("ray_version", "?"))[:40]
        detail = (
            f"Ray {ray_version}: {len(nodes)} node(s), {gpus:g} GPU(s)"
            + (f" ({', '.join(kinds)})" if kinds else "")
            + f", {totals.get('CPU', 0.0):g} CPU(s)"
        )
        if self._own().entrypoint_num_gpus > gpus:
            detail += (
                f"; a job asks for {self._own().entrypoint_num_gpus:g} GPU(s), more than the "
                "cluster has now: jobs wait until an autoscaler adds such nodes"
            )
        return ProviderAccount(ok=True, detail=detail, hardware=", ".join(kinds) or None)

    # -- optional abilities -----------------------------------------------------------------

    def configured(self) -> bool:
        return bool(self._own().address or self._settings.ray_address)

    def sees_path(self, path: str) -> bool:
        return self._own().sees(path)

    def check_token(self, token: str) -> None:
        """A token rides in a header: one line of visible ASCII."""
        if not token or len(token) > 4096 or not all(33 <= ord(c) < 127 for c in token):
            raise InvalidInputError(
                "a Ray token is one line of visible ASCII characters (at most 4096)",
                code="invalid_token",
            )

    async def discover(self, job_ids: Collection[str]) -> dict[str, ProviderHandle]:
        wanted = set(job_ids)
        found: dict[str, ProviderHandle] = {}
        for info in await self._guard(self._api().jobs(), "discover"):
            job_id = info.get("submission_id")
            if job_id in wanted and _tagged(info) == job_id:
                found[job_id] = ProviderHandle(ref=job_id, data={"ray_submission_id": job_id})
        return found

    # -- internals --------------------------------------------------------------------------

    async def _submission(
        self, client: RayJobsClient, own: RaySettings, job: Job, bundle: JobBundle
    ) -> dict[str, Any]:
        if bundle.storage is None:
            raise ProviderError("ray: the job has no storage key to reach this server")
        config, dataloader, _ = split_secrets(
            bundle.spec.config, bundle.remote_dataloader or bundle.spec.dataloader
        )
        folder = packages.job_folder(
            config, dataloader, {"job_id": job.job_id, "dataset_url": bundle.dataset_url}
        )
        runtime_env: dict[str, Any] = {
            "working_dir": await self._package(client, folder),
            "env_vars": {
                **own.env_vars,
                **bundle.storage.environment(),
                "CLOUDTUNE_JOB_ID": job.job_id,
                "CLOUDTUNE_WEBHOOK_URL": bundle.webhook_url,
                "CLOUDTUNE_WEBHOOK_TOKEN": bundle.webhook_token,
                "PYTHONUNBUFFERED": "1",
            },
        }
        if own.ship_package:
            runtime_env["py_modules"] = [await self._package(client, packages.cloudtune_module())]
        if own.pip:
            runtime_env["pip"] = list(own.pip)
        if own.conda:
            runtime_env["conda"] = own.conda
        if own.image_uri:
            runtime_env["image_uri"] = own.image_uri
        body: dict[str, Any] = {
            "entrypoint": f"{shlex.quote(own.python)} -m cloudtune.trainer.remote",
            "submission_id": job.job_id,
            "runtime_env": runtime_env,
            "metadata": {METADATA_KEY: job.job_id},
            "entrypoint_num_cpus": own.entrypoint_num_cpus,
            "entrypoint_num_gpus": own.entrypoint_num_gpus,
        }
        if own.entrypoint_memory_gib is not None:
            body["entrypoint_memory"] = int(own.entrypoint_memory_gib * 1024**3)
        if own.accelerator_type:
            # Ray's convention: a sliver of the node's accelerator resource picks the kind.
            body["entrypoint_resources"] = {f"accelerator_type:{own.accelerator_type}": 0.001}
        return body

    async def _package(self, client: RayJobsClient, data: bytes) -> str:
        uri = packages.package_uri(data)
        try:
            if not await client.package_exists(uri):
                await client.upload_package(uri, data)
        except RayError as exc:
            raise _provider_error("package upload", exc) from None
        return uri

    async def _guard(self, call: Awaitable[T], what: str) -> T:
        try:
            return await call
        except RayError as exc:
            raise _provider_error(what, exc) from None

    def _own(self) -> RaySettings:
        own = self._config.config(self.name)
        assert isinstance(own, RaySettings)
        return own

    def _address(self) -> str:
        address = self._own().address or self._settings.ray_address
        if not address:
            raise InvalidInputError(
                "the ray provider has no cluster address: set CLOUDTUNE_RAY_ADDRESS or save "
                "`address` (the dashboard's http://host:8265) through PUT "
                "/api/cloud/providers/ray",
                code="provider_not_configured",
                provider=self.name,
            )
        return address.rstrip("/")

    def _api(self) -> RayJobsClient:
        own = self._own()
        address = self._address()
        token = self._config.token(self.name)
        key = (address, own.auth_header, token)
        if self._client is None or self._client_key != key:
            headers: dict[str, str] = {}
            if token:
                scheme = "Bearer " if own.auth_header.lower() == "authorization" else ""
                headers[own.auth_header] = scheme + token
            # The client it replaces may be mid-call in another task: left to the collector.
            self._client = RayJobsClient(
                address, headers, timeout=self._settings.ray_timeout_seconds
            )
            self._client_key = key
        return self._client


def _provider_error(what: str, exc: RayError) -> ProviderError:
    kind = ProviderUnavailableError if exc.status is None or exc.status >= 500 else ProviderError
    return kind(f"ray: {what} failed: {exc.detail}", provider="ray")


def _time(value: Any) -> datetime | None:
    """Ray's times are milliseconds since the epoch; 0 or none: not yet."""
    if not isinstance(value, int | float) or value <= 0:
        return None
    try:
        return datetime.fromtimestamp(value / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None  # a time no clock reads (1e300): unknown, not a failed poll


def _tagged(info: dict[str, Any]) -> Any:
    """The job id our submit tagged a Ray job with; None for one without (or with odd)
    metadata."""
    metadata = info.get("metadata")
    return metadata.get(METADATA_KEY) if isinstance(metadata, dict) else None


def _error(info: dict[str, Any], logs: str | None) -> str:
    """The trainer's own reason when it gave one, else Ray's message (its first line: the
    rest is the log's tail, which the job's log already holds)."""
    for line in reversed((logs or "").splitlines()):
        if line.startswith(_REASON_PREFIX) and "fail" in line:
            return line[len(_REASON_PREFIX) :][:MAX_ERROR]
    message = str(info.get("message") or "the Ray job failed").strip()
    return (message.splitlines() or ["the Ray job failed"])[0][:MAX_ERROR]
