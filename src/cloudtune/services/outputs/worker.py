"""Each replica's share of the outputs deliveries: a loop of its own (every reconcile interval,
or at once when woken: a delivery planned, a download done) claims the ones ready (pending, or
running under a claim that ran out: a replica died mid-download) up to a few at a time, and
downloads each in its own task. It is apart from the reconcile loop on purpose: a pass slowed by
a slow provider API must not hold files back until their links expire, nor a large file hold up
the polls. A download keeps its claim alive with heartbeats; on a clean stop the claims are
handed back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from cloudtune.domain.deliveries import Delivery
from cloudtune.services.context import Context
from cloudtune.services.outputs import homecoming
from cloudtune.store import deliveries

log = logging.getLogger(__name__)

# Downloads at once per replica (each streams in constant memory; disk and bandwidth bound).
CONCURRENCY = 4
# A claim not renewed for this long is another replica's to take (heartbeats come far sooner).
CLAIM = timedelta(minutes=2)


class OutputsWorker:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._loop = asyncio.create_task(self._run(), name="outputs")

    async def _run(self) -> None:
        interval = self._ctx.settings.reconcile_interval_seconds
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=interval)
            self._wake.clear()
            try:
                await self.run_pass()
            except Exception:  # the loop must survive one bad pass (a database blip)
                log.exception("outputs pass failed")

    async def run_pass(self) -> int:
        """Claim what is ready and start downloading it; the deliveries started."""
        self._tasks = {job_id: t for job_id, t in self._tasks.items() if not t.done()}
        free = CONCURRENCY - len(self._tasks)
        if free <= 0:
            return 0
        taken = await self._ctx.in_thread(_take, self._ctx, free)
        started = 0
        for delivery in taken:
            if delivery.job_id in self._tasks:  # its claim lapsed while this replica worked
                continue
            self._tasks[delivery.job_id] = asyncio.create_task(
                self._deliver(delivery), name=f"outputs {delivery.job_id}"
            )
            started += 1
        return started

    async def idle(self) -> None:
        """Wait for the downloads under way (tests, and a drain before stopping)."""
        while self._tasks:
            tasks = list(self._tasks.values())
            await asyncio.gather(*tasks, return_exceptions=True)
            self._tasks = {job_id: t for job_id, t in self._tasks.items() if not t.done()}

    async def stop(self) -> None:
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        for task in self._tasks.values():
            task.cancel()
        for job_id, task in self._tasks.items():
            with contextlib.suppress(asyncio.CancelledError):
                await task
            try:
                await self._ctx.in_thread(homecoming.release, self._ctx, job_id)
            except Exception:  # shutting down: the claim runs out by itself
                log.exception("could not hand back the outputs delivery of job %s", job_id)
        self._tasks = {}

    async def _deliver(self, delivery: Delivery) -> None:
        try:
            error = await homecoming.deliver(self._ctx, delivery)
        except asyncio.CancelledError:
            raise
        except Exception:  # the claim runs out and another pass tries again
            log.exception("job %s: outputs delivery failed", delivery.job_id)
            return
        finally:
            self._wake.set()  # a slot is free: take the next one now
        if error:
            log.warning("job %s: outputs not all home: %s", delivery.job_id, error)


def _take(ctx: Context, limit: int) -> list[Delivery]:
    # Every pass asks; most find nothing, and a read then keeps the write lock and the
    # response caches (ended by any committed write) out of it.
    now = ctx.clock()
    with ctx.db.read() as session:
        if not deliveries.any_ready(session, [homecoming.KIND], now=now, claim_for=CLAIM):
            return []
    with ctx.db.write() as session:
        return deliveries.take(
            session, [homecoming.KIND], now=ctx.clock(), claim_for=CLAIM, limit=limit
        )
