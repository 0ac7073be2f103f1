"""Queries for costs and metrics."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloudtune.domain.jobs import Job, JobStatus
from cloudtune.store.jobs import _LIST_COLUMNS, _jobs, _to_job
from cloudtune.store.tables import CostLimitModel, JobCountModel

GLOBAL = "global"


def get_limit(session: Session) -> CostLimitModel | None:
    return session.get(CostLimitModel, GLOBAL)


def save_limit(
    session: Session, *, enabled: bool, limit_micros: int, period: str, action: str, at: datetime
) -> None:
    row = session.get(CostLimitModel, GLOBAL, with_for_update=True)
    if row is None:
        row = CostLimitModel(scope=GLOBAL)
        session.add(row)
    row.enabled, row.limit_micros, row.period, row.action, row.updated_at = (
        enabled,
        limit_micros,
        period,
        action,
        at,
    )


def jobs_created_since(session: Session, start: datetime) -> list[Job]:
    query = select(*_LIST_COLUMNS).where(_jobs.c.created_at >= start)
    return [_to_job(row) for row in session.execute(query).mappings()]


def recent_completed(session: Session, profile: str, *, limit: int) -> list[Job]:
    query = (
        select(*_LIST_COLUMNS)
        .where(_jobs.c.status == JobStatus.COMPLETED.value, _jobs.c.hardware_profile == profile)
        .order_by(_jobs.c.completed_at.desc())
        .limit(limit)
    )
    return [_to_job(row) for row in session.execute(query).mappings()]


def counts(session: Session) -> tuple[dict[str, int], dict[str, int]]:
    table = JobCountModel.__table__
    by_status = dict(
        session.execute(
            select(table.c.status, func.sum(table.c.count)).group_by(table.c.status)
        ).all()
    )
    by_provider = dict(
        session.execute(
            select(table.c.provider, func.sum(table.c.count)).group_by(table.c.provider)
        ).all()
    )
    return (
        {k: int(v) for k, v in by_status.items() if v},
        {k: int(v) for k, v in by_provider.items() if v},
    )


def counts_by_status_and_provider(session: Session) -> dict[tuple[str, str], int]:
    table = JobCountModel.__table__
    rows = session.execute(
        select(table.c.status, table.c.provider, func.sum(table.c.count)).group_by(
            table.c.status, table.c.provider
        )
    )
    return {(status, provider): int(n) for status, provider, n in rows}
