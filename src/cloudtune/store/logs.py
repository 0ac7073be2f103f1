"""Queries on the job logs copied from providers (a remote job's log lives in the database)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloudtune.store.tables import JobLogModel


def save_logs(session: Session, job_id: str, text: str, at: datetime) -> None:
    row = session.get(JobLogModel, job_id)
    if row is None:
        session.add(JobLogModel(job_id=job_id, text=text, updated_at=at))
    elif len(text) >= len(row.text) or not text.startswith(row.text[: len(text)]):
        row.text, row.updated_at = text, at


def get_logs(session: Session, job_id: str) -> str | None:
    row = session.get(JobLogModel, job_id)
    return row.text if row else None


def get_logs_from(session: Session, job_id: str, start: int) -> tuple[int, str] | None:
    """The stored log's length and its text from character `start` on, cut in the database so
    a follower polling a long log reads only what is new."""
    row = session.execute(
        select(func.length(JobLogModel.text), func.substr(JobLogModel.text, start + 1)).where(
            JobLogModel.job_id == job_id
        )
    ).first()
    return None if row is None else (int(row[0] or 0), row[1] or "")
