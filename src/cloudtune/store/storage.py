"""Queries on the built-in object store's access keys (storage_credentials).

A key is looked up on every signed request, with its job's status in the same read: replicas
share the database, so a revocation or a job's end made by any of them counts at once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cloudtune.domain.jobs import utcnow
from cloudtune.store.tables import JobModel, StorageCredentialModel, UserModel


@dataclass(frozen=True, slots=True)
class CredentialRow:
    access_key_id: str
    secret_ciphertext: str
    user_id: str | None
    job_id: str | None
    bucket: str
    prefix: str
    can_write: bool
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    # The status of job_id's job at the time of the read (None: no job, or it is gone).
    job_status: str | None = None
    # The owner as they are now (None: no owner, or gone): a key never outlives its owner's
    # rights, whatever it was made with.
    owner: OwnerNow | None = None


@dataclass(frozen=True, slots=True)
class OwnerNow:
    username: str
    role: str
    is_active: bool


def _row(
    model: StorageCredentialModel, job_status: str | None = None, owner: OwnerNow | None = None
) -> CredentialRow:
    return CredentialRow(
        access_key_id=model.access_key_id,
        secret_ciphertext=model.secret_ciphertext,
        user_id=model.user_id,
        job_id=model.job_id,
        bucket=model.bucket,
        prefix=model.prefix,
        can_write=model.can_write,
        created_at=model.created_at,
        expires_at=model.expires_at,
        revoked_at=model.revoked_at,
        job_status=job_status,
        owner=owner,
    )


def insert_credential(session: Session, row: CredentialRow) -> None:
    session.add(
        StorageCredentialModel(
            access_key_id=row.access_key_id,
            secret_ciphertext=row.secret_ciphertext,
            user_id=row.user_id,
            job_id=row.job_id,
            bucket=row.bucket,
            prefix=row.prefix,
            can_write=row.can_write,
            created_at=row.created_at,
            expires_at=row.expires_at,
            revoked_at=None,
        )
    )


def find_credential(session: Session, access_key_id: str) -> CredentialRow | None:
    """The key with its job's current status and its owner as they are now, in one read."""
    found = session.execute(
        select(
            StorageCredentialModel,
            JobModel.status,
            UserModel.username,
            UserModel.role,
            UserModel.is_active,
        )
        .outerjoin(JobModel, JobModel.job_id == StorageCredentialModel.job_id)
        .outerjoin(UserModel, UserModel.id == StorageCredentialModel.user_id)
        .where(StorageCredentialModel.access_key_id == access_key_id)
    ).first()
    if found is None:
        return None
    model, status, username, role, active = found
    owner = OwnerNow(username, role, bool(active)) if username is not None else None
    return _row(model, status, owner)


def list_credentials(
    session: Session, *, user_id: str | None, everyone: bool
) -> list[CredentialRow]:
    """People's keys; a job's own keys are the job's business, not listed."""
    query = (
        select(StorageCredentialModel)
        .where(StorageCredentialModel.job_id.is_(None))
        .order_by(StorageCredentialModel.created_at.desc())
    )
    if not everyone:
        query = query.where(StorageCredentialModel.user_id == user_id)
    return [_row(model) for model in session.scalars(query)]


def revoke_credential(session: Session, access_key_id: str, *, at: datetime) -> bool:
    result = session.execute(
        update(StorageCredentialModel)
        .where(
            StorageCredentialModel.access_key_id == access_key_id,
            StorageCredentialModel.revoked_at.is_(None),
        )
        .values(revoked_at=at)
    )
    return bool(getattr(result, "rowcount", 0))


def live_job_credential(session: Session, job_id: str) -> CredentialRow | None:
    """The newest key of a job that is neither revoked nor expired."""
    model = session.scalars(
        select(StorageCredentialModel)
        .where(
            StorageCredentialModel.job_id == job_id,
            StorageCredentialModel.revoked_at.is_(None),
            StorageCredentialModel.expires_at > utcnow(),
        )
        .order_by(StorageCredentialModel.created_at.desc())
        .limit(1)
    ).first()
    return _row(model) if model is not None else None


def revoke_job_credentials(session: Session, job_id: str, *, at: datetime) -> int:
    result = session.execute(
        update(StorageCredentialModel)
        .where(
            StorageCredentialModel.job_id == job_id,
            StorageCredentialModel.revoked_at.is_(None),
        )
        .values(revoked_at=at)
    )
    return int(getattr(result, "rowcount", 0))


def job_owner_and_status(session: Session, job_id: str) -> tuple[str | None, str, bool] | None:
    """(user_id, status, whether its owner may still act: active, or no owner) of a job, or
    None when there is no such job."""
    found = session.execute(
        select(JobModel.user_id, JobModel.status, UserModel.is_active)
        .outerjoin(UserModel, UserModel.id == JobModel.user_id)
        .where(JobModel.job_id == job_id)
    ).first()
    if found is None:
        return None
    user_id, status, active = found
    return user_id, status, user_id is None or bool(active)


def revoke_user_credentials(session: Session, user_id: str, *, at: datetime) -> int:
    """A disabled account's keys, its jobs' too."""
    result = session.execute(
        update(StorageCredentialModel)
        .where(
            StorageCredentialModel.user_id == user_id,
            StorageCredentialModel.revoked_at.is_(None),
        )
        .values(revoked_at=at)
    )
    return int(getattr(result, "rowcount", 0))
