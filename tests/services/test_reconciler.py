"""The reconciler on injected clocks: the backoff schedule, leases between replicas, local
jobs another replica holds, and cancels taken by a replica that does not hold the job."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cloudtune.domain.jobs import Job, JobStatus, JobType
from cloudtune.domain.principal import LOCAL_ADMIN
from cloudtune.errors import ConflictError
from cloudtune.providers.base import NotMine, ProviderHandle, ProviderStatus, RestoredJob
from cloudtune.providers.registry import ProviderRegistry
from cloudtune.services import jobs as job_service
from cloudtune.services.context import Context
from cloudtune.services.polling import BACKOFF_START, PollSchedule
from cloudtune.services.reconciler import Reconciler
from cloudtune.services.tokens import TokenSigner
from cloudtune.settings import Settings
from cloudtune.store import jobs as job_store
from cloudtune.store import leases as lease_store
from cloudtune.store.db import Database
from tests.factories import create_job


class Clock:
    """Monotonic seconds and wall time that move only when a test says so."""

    def __init__(self) -> None:
        self.seconds = 1000.0
        self.start = datetime(2026, 1, 1, tzinfo=UTC)

    def monotonic(self) -> float:
        return self.seconds

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.seconds)

    def advance(self, seconds: float) -> None:
        self.seconds += seconds


@dataclass
class FakeRemote:
    """A provider polled with backoff; `polls` logs (replica, job ref) for every status call."""

    replica: str
    polls: list[tuple[str, str]]
    status_of: dict[str, JobStatus] = field(default_factory=dict)
    cancelled: list[str] = field(default_factory=list)
    name: str = "remote"
    job_type: str = JobType.CLOUD.value
    poll_with_backoff: bool = True

    async def status(self, handle: ProviderHandle) -> ProviderStatus:
        self.polls.append((self.replica, handle.ref))
        return ProviderStatus(status=self.status_of.get(handle.ref, JobStatus.RUNNING))

    async def cancel(self, handle: ProviderHandle) -> None:
        self.cancelled.append(handle.ref)


@dataclass
class FakeLocal:
    """A provider whose jobs live in one replica: the owner named in the handle. A cancelled
    job's trainer stops at once unless `slow_stop`; then it runs until the test adds its ref
    to `stopped`."""

    replica: str
    asked: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    stopped: set[str] = field(default_factory=set)
    slow_stop: bool = False
    name: str = "local"
    job_type: str = JobType.LOCAL.value
    poll_with_backoff: bool = False

    def holds(self, handle: ProviderHandle) -> bool:
        return handle.data.get("owner") == self.replica

    async def status(self, handle: ProviderHandle) -> ProviderStatus | NotMine:
        self.asked.append(handle.ref)
        if not self.holds(handle):
            return NotMine(owner=handle.data.get("owner"))
        if handle.ref in self.stopped:
            return ProviderStatus(status=JobStatus.CANCELLED)
        return ProviderStatus(status=JobStatus.RUNNING)

    async def cancel(self, handle: ProviderHandle) -> None:
        self.cancelled.append(handle.ref)
        if not self.slow_stop:
            self.stopped.add(handle.ref)

    async def restore(self, jobs: list[RestoredJob]) -> None:
        self.restored.extend(restored.job.job_id for restored in jobs)


@dataclass
class Replica:
    ctx: Context
    reconciler: Reconciler
    remote: FakeRemote
    local: FakeLocal


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def polls() -> list[tuple[str, str]]:
    return []


@pytest.fixture
def replicas(
    db: Database, tmp_path: Path, clock: Clock, polls: list[tuple[str, str]]
) -> Iterator[dict[str, Replica]]:
    made = {}
    for name in ("a", "b"):
        settings = Settings(
            home=tmp_path / name,
            replica_id=name,
            reconcile_interval_seconds=1.0,
            reconcile_backoff_max_seconds=8.0,
            reconcile_lease_seconds=10.0,
        )
        settings.ensure_folders()
        registry = ProviderRegistry(settings, names=[])
        remote, local = FakeRemote(name, polls), FakeLocal(name)
        registry._providers.update(remote=remote, local=local)  # type: ignore[dict-item]
        ctx = Context(
            settings=settings,
            db=db,
            providers=registry,
            tokens=TokenSigner.from_home(settings.home),
            clock=clock.now,
        )
        made[name] = Replica(ctx, Reconciler(ctx, monotonic=clock.monotonic), remote, local)
    yield made


def remote_job(db: Database, clock: Clock) -> Job:
    job = create_job(
        db,
        provider="remote",
        job_type=JobType.CLOUD,
        status=JobStatus.RUNNING,
        provider_ref="p-" + uuid.uuid4().hex,
        created_at=clock.now(),
    )
    return job


def local_job(db: Database, clock: Clock, owner: str, ref: str = "ref") -> Job:
    return create_job(
        db,
        status=JobStatus.RUNNING,
        provider_ref=ref,
        provider_data={"owner": owner},
        created_at=clock.now(),
    )


def status_of(db: Database, job_id: str) -> JobStatus:
    with db.read() as session:
        job = job_store.get_job(session, job_id)
    assert job is not None
    return job.status


# -- the backoff schedule -------------------------------------------------------------------


def test_backoff_doubles_while_nothing_changes_up_to_the_ceiling(clock: Clock) -> None:
    settings = Settings(reconcile_interval_seconds=1.0, reconcile_backoff_max_seconds=8.0)
    schedule = PollSchedule(settings, clock.monotonic)
    intervals = []
    for _ in range(6):
        assert schedule.due("j")
        schedule.before_call("j")
        schedule.after_check("j", changed=False)
        poll = schedule.get("j")
        assert poll is not None
        intervals.append(poll.interval)
        clock.advance(poll.interval - 0.01)
        assert not schedule.due("j")
        clock.advance(0.01)
    assert intervals == [2.0, 4.0, 8.0, 8.0, 8.0, 8.0]


def test_a_change_starts_the_backoff_again(clock: Clock) -> None:
    settings = Settings(reconcile_interval_seconds=1.0, reconcile_backoff_max_seconds=60.0)
    schedule = PollSchedule(settings, clock.monotonic)
    for _ in range(4):
        schedule.before_call("j")
        schedule.after_check("j", changed=False)
    assert schedule.get("j").interval == 16.0  # type: ignore[union-attr]
    schedule.after_check("j", changed=True)
    assert schedule.get("j").interval == BACKOFF_START  # type: ignore[union-attr]


def test_the_reconcile_interval_is_the_floor(clock: Clock) -> None:
    settings = Settings(reconcile_interval_seconds=5.0, reconcile_backoff_max_seconds=3.0)
    schedule = PollSchedule(settings, clock.monotonic)
    schedule.before_call("j")
    schedule.after_check("j", changed=True)
    assert schedule.get("j").interval == 5.0  # type: ignore[union-attr]
    schedule.after_check("j", changed=False)
    assert schedule.get("j").interval == 5.0  # type: ignore[union-attr]
    # A reader's ask counts only once the floor passed since we last learned the state.
    assert schedule.ask("j") == (False, False)
    clock.advance(5.0)
    assert schedule.ask("j") == (True, True)
    assert schedule.ask("j") == (False, True)


async def test_the_reconciler_polls_a_quiet_job_on_the_schedule(
    replicas: dict[str, Replica], db: Database, clock: Clock, polls: list[tuple[str, str]]
) -> None:
    a = replicas["a"]
    job = remote_job(db, clock)
    times = []
    for _ in range(40):  # 20 seconds in half-second passes
        before = len(polls)
        await a.reconciler.run_pass()
        if len(polls) > before:
            times.append(clock.seconds - 1000.0)
        clock.advance(0.5)
    assert times == [0.0, 2.0, 6.0, 14.0]  # 2, 4, 8 (the ceiling), 8
    assert {ref for _, ref in polls} == {job.provider_ref}


# -- leases -----------------------------------------------------------------------------------


async def test_one_replica_polls_a_remote_job_and_the_other_takes_over_when_it_stops(
    replicas: dict[str, Replica], db: Database, clock: Clock, polls: list[tuple[str, str]]
) -> None:
    a, b = replicas["a"], replicas["b"]
    jobs = [remote_job(db, clock) for _ in range(3)]
    for _ in range(30):  # 15 seconds: longer than a lease, renewed by a's passes
        await a.reconciler.run_pass()
        await b.reconciler.run_pass()
        clock.advance(0.5)
    assert {replica for replica, _ in polls} == {"a"}
    assert {ref for _, ref in polls} == {job.provider_ref for job in jobs}

    # a stops: b waits out a's lease (10 s from a's last renewal), then polls every job.
    polls.clear()
    stopped_at = clock.seconds
    while not polls:
        await b.reconciler.run_pass()
        clock.advance(0.5)
    assert 10.0 <= clock.seconds - stopped_at <= 10.0 + 1.0
    await b.reconciler.run_pass()
    assert {replica for replica, _ in polls} == {"b"}
    assert {ref for _, ref in polls} == {job.provider_ref for job in jobs}
    with db.read() as session:
        assert {o for o, _ in lease_store.holders(session, [j.job_id for j in jobs]).values()} == {
            "b"
        }

    # A job that ends loses its lease; a's return finds every lease held and polls nothing.
    b.remote.status_of[jobs[0].provider_ref or ""] = JobStatus.COMPLETED
    clock.advance(10.0)
    polls.clear()
    await b.reconciler.run_pass()
    await a.reconciler.run_pass()
    assert status_of(db, jobs[0].job_id) == JobStatus.COMPLETED
    assert {replica for replica, _ in polls} == {"b"}
    with db.read() as session:
        assert set(lease_store.holders(session, [j.job_id for j in jobs])) == {
            j.job_id for j in jobs[1:]
        }


async def test_an_explicit_sync_polls_only_what_the_replica_holds(
    replicas: dict[str, Replica], db: Database, clock: Clock, polls: list[tuple[str, str]]
) -> None:
    a, b = replicas["a"], replicas["b"]
    remote_job(db, clock)
    await a.reconciler.run_pass()
    polls.clear()
    await b.reconciler.sync()
    await a.reconciler.sync()
    assert polls and {replica for replica, _ in polls} == {"a"}


# -- local jobs: only their replica judges them -----------------------------------------------


async def test_a_local_job_of_another_replica_is_left_alone(
    replicas: dict[str, Replica], db: Database, clock: Clock
) -> None:
    a, b = replicas["a"], replicas["b"]
    job = local_job(db, clock, owner="a")
    for _ in range(5):
        await b.reconciler.run_pass()
        clock.advance(1.0)
    assert b.local.asked == [] and status_of(db, job.job_id) == JobStatus.RUNNING
    await a.reconciler.run_pass()
    assert a.local.asked == ["ref"]

    # On start, each replica is handed back only its own jobs.
    await b.reconciler.start()
    await b.reconciler.stop()
    await a.reconciler.start()
    await a.reconciler.stop()
    assert b.local.restored == [] and a.local.restored == [job.job_id]


async def test_a_cancel_through_another_replica_is_carried_out_by_the_holder(
    replicas: dict[str, Replica], db: Database, clock: Clock
) -> None:
    a, b = replicas["a"], replicas["b"]
    job = local_job(db, clock, owner="a")
    answer = await job_service.cancel_job(b.ctx, LOCAL_ADMIN, job.job_id)
    assert answer.status == JobStatus.CANCELLED  # the answer the API always gave
    assert b.local.cancelled == [] and a.local.cancelled == []
    with db.read() as session:
        assert [j.job_id for j in lease_store.list_cancel_requests(session)] == [job.job_id]

    await b.reconciler.run_pass()  # not b's to stop
    assert b.local.cancelled == []
    await a.reconciler.run_pass()  # the holder stops it on its next pass, once
    await a.reconciler.run_pass()
    assert a.local.cancelled == ["ref"]
    with db.read() as session:
        assert lease_store.list_cancel_requests(session) == []
    assert status_of(db, job.job_id) == JobStatus.CANCELLED

    # Its own job: the holder stops it at once and records no request.
    own = local_job(db, clock, owner="a")
    await job_service.cancel_job(a.ctx, LOCAL_ADMIN, own.job_id)
    assert a.local.cancelled == ["ref", "ref"]
    with db.read() as session:
        assert lease_store.list_cancel_requests(session) == []


async def test_a_remote_job_is_cancelled_by_whichever_replica_is_asked(
    replicas: dict[str, Replica], db: Database, clock: Clock
) -> None:
    a, b = replicas["a"], replicas["b"]
    job = remote_job(db, clock)
    await a.reconciler.run_pass()  # a holds the lease
    await job_service.cancel_job(b.ctx, LOCAL_ADMIN, job.job_id)
    assert b.remote.cancelled == [job.provider_ref]
    assert status_of(db, job.job_id) == JobStatus.CANCELLED
    await a.reconciler.run_pass()
    with db.read() as session:
        assert lease_store.holders(session, [job.job_id]) == {}


async def test_a_job_whose_cancel_waits_for_its_holder_cannot_be_deleted(
    replicas: dict[str, Replica], db: Database, clock: Clock
) -> None:
    a, b = replicas["a"], replicas["b"]
    job = local_job(db, clock, owner="a")
    await job_service.cancel_job(b.ctx, LOCAL_ADMIN, job.job_id)
    with pytest.raises(ConflictError) as refused:
        job_service.delete_job(b.ctx, LOCAL_ADMIN, job.job_id)
    assert refused.value.code == "cancel_pending"
    assert "not stopped its trainer yet" in refused.value.detail
    with db.read() as session:  # the row, and with it the request, is still there
        assert [j.job_id for j in lease_store.list_cancel_requests(session)] == [job.job_id]

    await a.reconciler.run_pass()
    assert a.local.cancelled == ["ref"]
    job_service.delete_job(b.ctx, LOCAL_ADMIN, job.job_id)
    with db.read() as session:
        assert job_store.get_job(session, job.job_id) is None


async def test_a_cancel_taken_while_the_holder_was_down_stops_its_trainer_after_restart(
    replicas: dict[str, Replica], db: Database, clock: Clock
) -> None:
    a, b = replicas["a"], replicas["b"]
    a.local.slow_stop = True  # a trainer stops within its cancel grace, not at once
    job = local_job(db, clock, owner="a", ref="live")
    other = local_job(db, clock, owner="b", ref="b-live")
    await job_service.cancel_job(b.ctx, LOCAL_ADMIN, job.job_id)  # a is down meanwhile
    await job_service.cancel_job(a.ctx, LOCAL_ADMIN, other.job_id)
    assert status_of(db, job.job_id) == JobStatus.CANCELLED

    # a starts again: its provider gets the ended job back (a live trainer is re-adopted);
    # b's job, whose cancel waits for b, is not a's.
    await a.reconciler.start()
    await a.reconciler.stop()
    assert a.local.restored == [job.job_id]

    await a.reconciler.run_pass()
    assert a.local.cancelled == ["live"]
    with db.read() as session:  # the trainer still runs: the request stays
        asked = {j.job_id for j in lease_store.list_cancel_requests(session)}
    assert asked == {job.job_id, other.job_id}

    a.local.stopped.add("live")
    await a.reconciler.run_pass()
    with db.read() as session:
        assert [j.job_id for j in lease_store.list_cancel_requests(session)] == [other.job_id]
    assert status_of(db, job.job_id) == JobStatus.CANCELLED


async def test_a_provider_polled_every_pass_is_still_polled_by_one_replica_at_a_time(
    replicas: dict[str, Replica], db: Database, clock: Clock, polls: list[tuple[str, str]]
) -> None:
    """Not pinned to a replica means polled under a lease, whatever its poll schedule."""
    a, b = replicas["a"], replicas["b"]
    a.remote.poll_with_backoff = b.remote.poll_with_backoff = False
    jobs = [remote_job(db, clock) for _ in range(2)]
    for _ in range(6):
        await a.reconciler.run_pass()
        await b.reconciler.run_pass()
        clock.advance(0.5)
    assert {replica for replica, _ in polls} == {"a"}
    assert len(polls) == 6 * len(jobs)  # every pass: no backoff for this provider
    with db.read() as session:
        holders = lease_store.holders(session, [j.job_id for j in jobs])
    assert {owner for owner, _ in holders.values()} == {"a"}


async def test_a_reader_on_a_replica_that_does_not_hold_the_job_neither_wakes_nor_waits(
    replicas: dict[str, Replica], db: Database, clock: Clock
) -> None:
    a, b = replicas["a"], replicas["b"]
    job = remote_job(db, clock)
    await a.reconciler.run_pass()
    await b.reconciler.run_pass()  # b's claim fails: a holds the lease
    clock.advance(5.0)
    passes = b.reconciler.passes_done
    assert b.reconciler.ask([job]) is False
    assert not b.reconciler._wake.is_set()
    await b.reconciler.check_soon([job], wait=3600)  # returns at once, with no pass
    assert b.reconciler.passes_done == passes

    # The holder marks it and wakes its loop.
    assert a.reconciler.ask([job]) is True
    assert a.reconciler._wake.is_set()


async def test_a_clean_stop_gives_the_leases_back(
    replicas: dict[str, Replica], db: Database, clock: Clock, polls: list[tuple[str, str]]
) -> None:
    a, b = replicas["a"], replicas["b"]
    jobs = [remote_job(db, clock) for _ in range(2)]
    await a.reconciler.start()
    await a.reconciler.run_pass()
    with db.read() as session:
        assert len(lease_store.holders(session, [j.job_id for j in jobs])) == 2
    await a.reconciler.stop()
    with db.read() as session:
        assert lease_store.holders(session, [j.job_id for j in jobs]) == {}
    polls.clear()
    await b.reconciler.run_pass()  # no lease period to wait out
    assert {replica for replica, _ in polls} == {"b"}
    assert {ref for _, ref in polls} == {job.provider_ref for job in jobs}
