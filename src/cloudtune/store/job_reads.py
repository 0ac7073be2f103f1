"""Reads of jobs: one job, a page of the list and its total, and the one row-to-`Job` mapping.

The job detail and the list are the hottest reads of the API: they run as statements compiled
once per dialect and filter shape (store.compiled); everything else reads through SQLAlchemy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, Select, Table, bindparam, func, select
from sqlalchemy.orm import Session

from cloudtune.domain.jobs import Job, JobStatus, JobType, Progress
from cloudtune.store import compiled
from cloudtune.store.tables import JobCountModel, JobModel

_jobs = cast(Table, JobModel.__table__)
# The list leaves out the heavy and the private columns.
_LIST_COLUMNS = [c for c in _jobs.c if c.name not in ("config_snapshot", "provider_data")]


@dataclass(frozen=True, slots=True)
class JobFilter:
    statuses: tuple[JobStatus, ...] = ()
    provider: str | None = None
    job_type: JobType | None = None
    user_id: str | None = None
    only_user: bool = False


def user_key(user_id: str | None) -> str:
    return user_id or ""


def get_job(session: Session, job_id: str, *, for_update: bool = False) -> Job | None:
    if for_update:
        query = select(_jobs).where(_jobs.c.job_id == job_id).with_for_update()
        row = session.execute(query).mappings().first()
        return _to_job(row) if row is not None else None
    # The job detail's read: compiled once (store.compiled).
    rows = compiled.run(
        session,
        "job",
        lambda: select(_jobs).where(_jobs.c.job_id == bindparam("job_id")),
        {"job_id": job_id},
    )
    return _to_job(compiled.reader(session, "job", list(_jobs.c))(rows[0])) if rows else None


def list_jobs(session: Session, flt: JobFilter, *, limit: int, offset: int) -> list[Job]:
    def build() -> Select[Any]:
        query = select(*_LIST_COLUMNS).where(*_filter_conditions(_jobs, flt))
        query = query.order_by(_jobs.c.created_at.desc(), _jobs.c.job_id.desc())
        return query.limit(bindparam("limit")).offset(bindparam("offset"))

    params = {**_filter_params(flt), "limit": limit, "offset": offset}
    rows = compiled.run(session, ("list", _filter_shape(flt)), build, params)
    read = compiled.reader(session, "list", _LIST_COLUMNS)
    return [_to_job(read(row)) for row in rows]


def count_jobs(session: Session, flt: JobFilter) -> int:
    counts = cast(Table, JobCountModel.__table__)

    def build() -> Select[Any]:
        query = select(func.coalesce(func.sum(counts.c.count), 0))
        return query.where(*_filter_conditions(counts, flt))

    rows = compiled.run(session, ("count", _filter_shape(flt)), build, _filter_params(flt))
    return int(rows[0][0] or 0)


def _filter_conditions(table: Table, flt: JobFilter) -> list[ColumnElement[bool]]:
    """One filter for the jobs table and for its running counts, so a page and its `total`
    always agree; its values are the parameters `_filter_params` names."""
    conditions: list[ColumnElement[bool]] = []
    if flt.statuses:
        names: list[Any] = [bindparam(f"status{i}") for i in range(len(flt.statuses))]
        conditions.append(table.c.status.in_(names))
    if flt.provider:
        conditions.append(table.c.provider == bindparam("provider"))
    if flt.job_type:
        conditions.append(table.c.job_type == bindparam("job_type"))
    if flt.only_user:
        if table is _jobs:
            owner = table.c.user_id
            mine = owner.is_(None) if flt.user_id is None else owner == bindparam("user")
            conditions.append(mine)
        else:
            conditions.append(table.c.user_key == bindparam("user"))
    return conditions


def _filter_shape(flt: JobFilter) -> tuple[int, bool, bool, bool, bool]:
    """What `_filter_conditions` builds depends on this alone (not on the values)."""
    return (
        len(flt.statuses),
        bool(flt.provider),
        bool(flt.job_type),
        flt.only_user,
        flt.user_id is None,
    )


def _filter_params(flt: JobFilter) -> dict[str, Any]:
    params: dict[str, Any] = {f"status{i}": s.value for i, s in enumerate(flt.statuses)}
    if flt.provider:
        params["provider"] = flt.provider
    if flt.job_type:
        params["job_type"] = flt.job_type.value
    if flt.only_user:
        params["user"] = user_key(flt.user_id)  # unused for a None owner on jobs
    return params


def _to_job(row: Any) -> Job:
    return Job(
        job_id=row["job_id"],
        job_type=JobType(row["job_type"]),
        provider=row["provider"],
        status=JobStatus(row["status"]),
        created_at=row["created_at"],
        config_name=row["config_name"],
        tracker_run_name=row["tracker_run_name"],
        user_id=row["user_id"],
        queued_at=row["queued_at"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        hardware_type=row["hardware_type"],
        hardware_profile=row["hardware_profile"],
        price_per_hour_micros=row["price_per_hour_micros"],
        estimated_cost_micros=row["estimated_cost_micros"],
        cost_micros=row["cost_micros"],
        max_cost_micros=row["max_cost_micros"],
        progress=Progress.from_dict(row["progress"]),
        error_message=row["error_message"],
        output_url=row["output_url"],
        outputs=row["outputs"] or [],
        queue_position=row["queue_position"],
        priority=row["priority"],
        metadata=row["metadata"] or {},
        config_snapshot=row.get("config_snapshot"),
        provider_ref=row["provider_ref"],
        provider_data=row.get("provider_data") or {},
        publishes=bool(row["publishes"]),
    )
