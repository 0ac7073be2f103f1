"""Queries on job deliveries (domain/deliveries.py): one row per job and kind.

A delivery is taken by one guarded update (pending, or running with a claim that ran out, to
running), so two replicas never deliver the same thing at once; a replica that dies while
delivering leaves a running row whose claim runs out and is taken again."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Table, and_, or_, select, update
from sqlalchemy.orm import Session

from cloudtune.domain.deliveries import PUBLISH_KINDS, Delivery, DeliveryKind, DeliveryStatus
from cloudtune.store.tables import JobDeliveryModel, JobModel

_deliveries = cast(Table, JobDeliveryModel.__table__)


def _to_delivery(row: JobDeliveryModel) -> Delivery:
    return Delivery(
        job_id=row.job_id,
        kind=DeliveryKind(row.kind),
        status=DeliveryStatus(row.status),
        attempts=row.attempts,
        error=row.error,
        target=row.target,
        settings=dict(row.settings or {}),
        updated_at=row.updated_at,
    )


def plan(
    session: Session,
    job_id: str,
    kind: DeliveryKind,
    *,
    at: datetime,
    settings: dict[str, Any] | None = None,
) -> None:
    """A delivery to make, pending; planning one again starts it over (a retry)."""
    row = session.get(JobDeliveryModel, (job_id, kind.value), with_for_update=True)
    if row is None:
        session.add(
            JobDeliveryModel(
                job_id=job_id,
                kind=kind.value,
                status=DeliveryStatus.PENDING.value,
                attempts=0,
                settings=settings,
                updated_at=at,
            )
        )
    else:
        row.status = DeliveryStatus.PENDING.value
        row.error = None
        row.updated_at = at
        if settings is not None:
            row.settings = settings
    if kind in PUBLISH_KINDS:
        session.execute(update(JobModel).where(JobModel.job_id == job_id).values(publishes=True))
    session.flush()  # the guarded statements below work on the table: they do not autoflush


def deliveries_of(session: Session, job_id: str) -> list[Delivery]:
    rows = session.scalars(
        select(JobDeliveryModel)
        .where(JobDeliveryModel.job_id == job_id)
        .order_by(JobDeliveryModel.kind)
    )
    return [_to_delivery(row) for row in rows]


def get_delivery(session: Session, job_id: str, kind: DeliveryKind) -> Delivery | None:
    row = session.get(JobDeliveryModel, (job_id, kind.value))
    return _to_delivery(row) if row is not None else None


def take(
    session: Session,
    kinds: Iterable[DeliveryKind],
    *,
    now: datetime,
    claim_for: timedelta,
    limit: int = 10,
) -> list[Delivery]:
    """Claim up to `limit` deliveries of these kinds to make now: pending ones, and running
    ones whose claim (their `updated_at` + `claim_for`) ran out. Each is claimed by a guarded
    update; the ones another replica took first are left out."""
    return _take(session, kinds, None, now=now, claim_for=claim_for, limit=limit)


def _ready(now: datetime, claim_for: timedelta) -> ColumnElement[bool]:
    """Pending, or running with a claim that ran out."""
    return or_(
        _deliveries.c.status == DeliveryStatus.PENDING.value,
        and_(
            _deliveries.c.status == DeliveryStatus.RUNNING.value,
            _deliveries.c.updated_at < now - claim_for,
        ),
    )


def _take(
    session: Session,
    kinds: Iterable[DeliveryKind],
    of_jobs: ColumnElement[bool] | None,
    *,
    now: datetime,
    claim_for: timedelta,
    limit: int,
) -> list[Delivery]:
    wanted = [kind.value for kind in kinds]
    ready = _ready(now, claim_for)
    found = select(_deliveries.c.job_id, _deliveries.c.kind, _deliveries.c.updated_at).where(
        _deliveries.c.kind.in_(wanted), ready
    )
    if of_jobs is not None:
        found = found.where(of_jobs)
    candidates = session.execute(found.order_by(_deliveries.c.updated_at).limit(limit)).all()
    taken: list[Delivery] = []
    for job_id, kind, seen_at in candidates:
        claimed = cast(
            CursorResult[Any],
            session.execute(
                update(_deliveries)
                .where(
                    _deliveries.c.job_id == job_id,
                    _deliveries.c.kind == kind,
                    _deliveries.c.updated_at == seen_at,
                    ready,
                )
                .values(
                    status=DeliveryStatus.RUNNING.value,
                    attempts=_deliveries.c.attempts + 1,
                    updated_at=now,
                )
            ),
        )
        if claimed.rowcount == 1:
            row = session.get(JobDeliveryModel, (job_id, kind), populate_existing=True)
            assert row is not None
            taken.append(_to_delivery(row))
    return taken


def finish(
    session: Session,
    job_id: str,
    kind: DeliveryKind,
    *,
    at: datetime,
    error: str | None = None,
    target: str | None = None,
) -> None:
    """Done (no error) or failed (with the error shown to the user, never a secret)."""
    values: dict[str, Any] = {
        "status": (DeliveryStatus.FAILED if error else DeliveryStatus.DONE).value,
        "error": error,
        "updated_at": at,
    }
    if target is not None:
        values["target"] = target
    session.execute(
        update(_deliveries)
        .where(_deliveries.c.job_id == job_id, _deliveries.c.kind == kind.value)
        .values(**values)
    )


def heartbeat(session: Session, job_id: str, kind: DeliveryKind, *, at: datetime) -> None:
    """Keep a long delivery's claim (a large download) from running out while it works."""
    session.execute(
        update(_deliveries)
        .where(
            _deliveries.c.job_id == job_id,
            _deliveries.c.kind == kind.value,
            _deliveries.c.status == DeliveryStatus.RUNNING.value,
        )
        .values(updated_at=at)
    )


def save_settings(
    session: Session, job_id: str, kind: DeliveryKind, settings: dict[str, Any]
) -> None:
    """Replace a delivery's settings (what it learned while delivering, e.g. file checksums)
    without touching its state."""
    session.execute(
        update(_deliveries)
        .where(_deliveries.c.job_id == job_id, _deliveries.c.kind == kind.value)
        .values(settings=settings)
    )


def take_of_jobs_in(
    session: Session,
    kinds: Iterable[DeliveryKind],
    job_statuses: Iterable[str],
    *,
    now: datetime,
    claim_for: timedelta,
    limit: int = 10,
) -> list[Delivery]:
    """As `take`, but only deliveries whose job has one of these statuses (a publish waits for
    its job to complete; a failed job's publish is never made)."""
    jobs = cast(Table, JobModel.__table__)
    of_jobs = _deliveries.c.job_id.in_(
        select(jobs.c.job_id).where(jobs.c.status.in_(list(job_statuses)))
    )
    return _take(session, kinds, of_jobs, now=now, claim_for=claim_for, limit=limit)


def any_ready(
    session: Session, kinds: Iterable[DeliveryKind], *, now: datetime, claim_for: timedelta
) -> bool:
    """Whether `take` would find anything: a read, so a replica with nothing to deliver asks
    without taking the write lock (nor ending the caches a committed write ends)."""
    wanted = [kind.value for kind in kinds]
    ready = _ready(now, claim_for)
    found = session.execute(
        select(_deliveries.c.job_id).where(_deliveries.c.kind.in_(wanted), ready).limit(1)
    ).first()
    return found is not None


def deliveries_of_jobs(session: Session, job_ids: Iterable[str]) -> dict[str, list[Delivery]]:
    """The deliveries of each of these jobs, in one query (a page of the job list)."""
    wanted = list(job_ids)
    found: dict[str, list[Delivery]] = {job_id: [] for job_id in wanted}
    if not wanted:
        return found
    rows = session.scalars(
        select(JobDeliveryModel)
        .where(JobDeliveryModel.job_id.in_(wanted))
        .order_by(JobDeliveryModel.job_id, JobDeliveryModel.kind)
    )
    for row in rows:
        found[row.job_id].append(_to_delivery(row))
    return found
