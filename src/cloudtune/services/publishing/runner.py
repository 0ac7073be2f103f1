"""The publish runner: in each server process, beside the reconciler, it takes the Hub and S3
deliveries of completed jobs (`store.deliveries.take_of_jobs_in`: a guarded claim, so two
replicas never publish one job twice) and makes them off the request path, each ending done
with where it went or failed with its error (scrubbed of secrets) for the job's JSON."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta
from pathlib import Path

from cloudtune.domain.deliveries import PUBLISH_KINDS, Delivery, DeliveryKind
from cloudtune.domain.jobs import JobStatus
from cloudtune.domain.publishing import (
    PublishSettings,
    hub_from_public,
    is_publish_secret,
    s3_from_public,
)
from cloudtune.services.context import Context
from cloudtune.services.publishing.defaults import environment_token, load_defaults
from cloudtune.services.publishing.endpoints import require_public_endpoint
from cloudtune.services.publishing.files import scrub
from cloudtune.services.publishing.hub import publish_to_hub
from cloudtune.services.publishing.s3 import publish_to_s3
from cloudtune.services.publishing.submit import may_use_server_token
from cloudtune.store import deliveries as delivery_store
from cloudtune.store import jobs as job_store

log = logging.getLogger(__name__)

# A claim outlives a crashed replica by this much; a live one renews it (heartbeat) while it
# uploads, every third of it.
CLAIM_FOR = timedelta(minutes=10)


class PublishError(Exception):
    """A publish that cannot start (no token, no keys, no folder): its message is shown."""


class PublishRunner:
    def __init__(self, ctx: Context, *, interval_seconds: float | None = None) -> None:
        self._ctx = ctx
        self._interval = interval_seconds or max(ctx.settings.reconcile_interval_seconds, 0.05)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="publish-runner")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:  # the loop must outlive a database hiccup
                log.exception("publish runner: a round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()

    async def run_once(self) -> int:
        """Make the deliveries ready now; how many were taken."""
        taken = await self._ctx.in_thread(self._take)
        for delivery in taken:
            await self._deliver(delivery)
        return len(taken)

    def _take(self) -> list[Delivery]:
        with self._ctx.db.write() as session:
            return delivery_store.take_of_jobs_in(
                session,
                PUBLISH_KINDS,
                [JobStatus.COMPLETED.value],
                now=self._ctx.clock(),
                claim_for=CLAIM_FOR,
            )

    async def _deliver(self, delivery: Delivery) -> None:
        ctx = self._ctx
        beat = asyncio.create_task(self._heartbeat(delivery))
        secrets: list[str | None] = []
        try:
            target = await ctx.in_thread(self._publish, delivery, secrets)
            error = None
        except Exception as exc:
            target = None
            error = scrub(f"{_name(exc)}: {exc}" if str(exc) else _name(exc), secrets)
            log.warning("job %s: publish to %s failed: %s", delivery.job_id, delivery.kind, error)
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
        await ctx.in_thread(self._finish, delivery, target, error)
        if error is None:
            log.info("job %s: published to %s (%s)", delivery.job_id, delivery.kind, target)

    def _finish(self, delivery: Delivery, target: str | None, error: str | None) -> None:
        with self._ctx.db.write() as session:
            delivery_store.finish(
                session,
                delivery.job_id,
                delivery.kind,
                at=self._ctx.clock(),
                error=error,
                target=target,
            )

    async def _heartbeat(self, delivery: Delivery) -> None:
        while True:
            await asyncio.sleep(CLAIM_FOR.total_seconds() / 3)
            await self._ctx.in_thread(self._beat, delivery)

    def _beat(self, delivery: Delivery) -> None:
        with self._ctx.db.write() as session:
            delivery_store.heartbeat(session, delivery.job_id, delivery.kind, at=self._ctx.clock())

    def _publish(self, delivery: Delivery, secrets: list[str | None]) -> str:
        """Runs in a thread. `secrets` is filled with the secrets in use, for scrubbing."""
        ctx = self._ctx
        with ctx.db.read() as session:
            job = job_store.get_job(session, delivery.job_id)
            sealed = job_store.job_secrets_ciphertext(session, delivery.job_id)
        if job is None or not job.output_url:
            raise PublishError("the job has no output folder")
        folder = Path(job.output_url)
        opened = ctx.secret_box.open_secrets(sealed) if sealed else []
        given = [s for s in opened if is_publish_secret(s[0])]
        from_defaults = bool(delivery.settings.get("from_defaults"))
        manager = bool(delivery.settings.get("by_provider_manager"))
        saved = load_defaults(ctx)
        if delivery.kind == DeliveryKind.HUB:
            hub = PublishSettings(hub=hub_from_public(delivery.settings)).with_secrets(given).hub
            assert hub is not None
            token = hub.token
            # Checked again here: the defaults may have moved to another repository since.
            if not token and may_use_server_token(saved.hub, hub.repo_id, anywhere=manager):
                token = (saved.hub.token if saved.hub else None) or environment_token()
            secrets.append(token)
            if not token:
                raise PublishError(
                    "no Hugging Face token: save one (PUT /api/cloud/publishing) or set "
                    "HF_TOKEN on the server, then retry"
                )
            return publish_to_hub(folder, hub, token=token, job_id=job.job_id)
        s3 = PublishSettings(s3=s3_from_public(delivery.settings)).with_secrets(given).s3
        assert s3 is not None
        if not s3.has_keys and from_defaults and saved.s3 is not None:
            if (saved.s3.endpoint_url, saved.s3.bucket) == (s3.endpoint_url, s3.bucket):
                s3 = saved.s3
        if s3.endpoint_url and not manager and not from_defaults:
            if saved.s3 is None or saved.s3.endpoint_url != s3.endpoint_url:
                # Again now: the name may point elsewhere than at the submit.
                require_public_endpoint(s3.endpoint_url)
        secrets.extend([s3.access_key_id, s3.secret_access_key])
        if not s3.access_key_id or not s3.secret_access_key:
            raise PublishError("no keys for the bucket: save them (PUT /api/cloud/publishing)")
        return publish_to_s3(
            folder,
            s3,
            access_key_id=s3.access_key_id,
            secret_access_key=s3.secret_access_key,
            job_id=job.job_id,
        )


def _name(exc: BaseException) -> str:
    return "publish refused" if isinstance(exc, PublishError) else type(exc).__name__
