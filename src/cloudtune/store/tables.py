"""The tables. Status changes of `jobs.status` go only through `store.jobs.switch_job_status`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every dialect (SQLite keeps no offset of its own)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class JobModel(Base):
    __tablename__ = "jobs"

    job_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_type: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str] = mapped_column(String(32))
    # Changed only through store.jobs.switch_job_status (transition table + event row).
    status: Mapped[str] = mapped_column(String(16))
    config_name: Mapped[str | None] = mapped_column(String(255))
    tracker_run_name: Mapped[str | None] = mapped_column(String(255))
    user_id: Mapped[str | None] = mapped_column(String(64))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    hardware_type: Mapped[str | None] = mapped_column(String(128))
    hardware_profile: Mapped[str | None] = mapped_column(String(64))
    price_per_hour_micros: Mapped[int | None] = mapped_column(BigInteger)
    estimated_cost_micros: Mapped[int | None] = mapped_column(BigInteger)
    cost_micros: Mapped[int | None] = mapped_column(BigInteger)
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error_message: Mapped[str | None] = mapped_column(Text)
    output_url: Mapped[str | None] = mapped_column(Text)
    outputs: Mapped[list[Any] | None] = mapped_column(JSON)
    queue_position: Mapped[int | None] = mapped_column(Integer)
    meta: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON)
    config_snapshot: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    provider_ref: Mapped[str | None] = mapped_column(String(255))
    provider_data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    max_cost_micros: Mapped[int | None] = mapped_column(BigInteger)
    # Set when a replica that does not hold the job was asked to cancel it; the holder stops
    # the job on its next reconcile pass and clears it (DESIGN §7).
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    # Whether the job has a publish target (a row in job_deliveries of kind hub or s3): a
    # page of jobs none of which publishes is read without asking job_deliveries.
    publishes: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    __table_args__ = (
        Index("ix_jobs_created_at_job_id", "created_at", "job_id"),
        Index("ix_jobs_status_created_at", "status", "created_at"),
        Index("ix_jobs_provider_created_at", "provider", "created_at"),
        Index("ix_jobs_user_id_created_at", "user_id", "created_at"),
        Index("ix_jobs_provider_ref", "provider", "provider_ref"),
    )


class JobEventModel(Base):
    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    job_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("jobs.job_id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(16))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    message: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class JobCountModel(Base):
    """Running totals of jobs per (user, provider, type, status), kept in the same transaction
    as every insert, status change and delete, so the list's `total` never scans the jobs table.
    """

    __tablename__ = "job_counts"

    user_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    job_type: Mapped[str] = mapped_column(String(16), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class IdempotencyKeyModel(Base):
    __tablename__ = "idempotency_keys"

    # Keys are scoped per user: the same key from two users names two jobs.
    user_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    job_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("jobs.job_id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class UserModel(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(32))
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # NULL: none given (answers show the username). Width: domain.accounts.DISPLAY_NAME_MAX.
    display_name: Mapped[str | None] = mapped_column(String(100))
    # Set by each successful login (sessions are deleted on logout and expiry, so they cannot
    # tell this later).
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SessionModel(Base):
    __tablename__ = "sessions"

    # Only a SHA-256 of the session token is stored.
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApiKeyModel(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # NULL: made by the local admin of a server with no users; valid only while none exist.
    user_id: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(128))
    key_prefix: Mapped[str] = mapped_column(String(16))
    # Only a SHA-256 of the key is stored (keys carry 238 random bits, so a slow hash adds
    # nothing and would cost every request).
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scoped_permissions: Mapped[list[str] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SetupMarkerModel(Base):
    """One row per one-time setup step; the primary key makes each happen once."""

    __tablename__ = "setup_markers"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class ProviderSettingsModel(Base):
    __tablename__ = "provider_settings"

    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    settings: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Fernet ciphertext of the provider token; never the token itself.
    token_ciphertext: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebhookDeliveryModel(Base):
    """Webhook ids already applied, so a redelivery is ignored."""

    __tablename__ = "webhook_deliveries"

    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    webhook_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class JobLogModel(Base):
    """Logs of remote jobs, copied as they arrive (providers may delete theirs)."""

    __tablename__ = "job_logs"

    job_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("jobs.job_id", ondelete="CASCADE"), primary_key=True
    )
    text: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CostLimitModel(Base):
    __tablename__ = "cost_limits"

    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    enabled: Mapped[bool] = mapped_column(default=False)
    limit_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    period: Mapped[str] = mapped_column(String(16), default="monthly")
    action: Mapped[str] = mapped_column(String(16), default="warn")
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class LoginBudgetModel(Base):
    """A token bucket per login account and per peer address, held by the database so that
    every replica spends from the same budget. A login attempt takes a token before the
    password is checked (`store.users.take_login_token`)."""

    __tablename__ = "login_budgets"

    key: Mapped[str] = mapped_column(String(320), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    # Seconds since the epoch (a float, so the refill is plain arithmetic on every dialect).
    updated_at: Mapped[float] = mapped_column(Float)


class NamedConfigModel(Base):
    """Who owns a named config, and its secrets (Fernet ciphertext of a JSON object). The
    config's other values live in SimpleTuner's folder layout on disk."""

    __tablename__ = "named_configs"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    # NULL: the local admin's (made with no users, or a folder dropped in by hand).
    owner_user_id: Mapped[str | None] = mapped_column(String(64), index=True)
    secrets_ciphertext: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class JobSecretModel(Base):
    """A job's secrets (hub token, S3 keys): Fernet ciphertext of a JSON object, handed to the
    trainer in its environment, never written to its run folder."""

    __tablename__ = "job_secrets"

    job_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("jobs.job_id", ondelete="CASCADE"), primary_key=True
    )
    ciphertext: Mapped[str] = mapped_column(Text)


class AuthEpochModel(Base):
    """One row whose value goes up in the same transaction as every change to who may do what
    (a user added or changed, a key revoked, a session ended). Each process keeps credentials
    it resolved only while the value stays the same, so a change made by any replica counts on
    the next request everywhere."""

    __tablename__ = "auth_epoch"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class JobLeaseModel(Base):
    """Which replica polls a remote job, until when. Claimed and renewed by one guarded
    statement (`store.leases.claim`), so one replica at a time holds a job; a replica that
    stops renewing loses its jobs when the lease runs out."""

    __tablename__ = "job_leases"

    job_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("jobs.job_id", ondelete="CASCADE"), primary_key=True
    )
    owner: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class StorageCredentialModel(Base):
    """An access key of the built-in S3 endpoint and what it may touch: one bucket, keys under
    one prefix, reading or also writing, until it expires, is revoked or its job ends. The
    secret is Fernet ciphertext, not a hash: checking an AWS Signature V4 needs the secret
    itself on the server's side."""

    __tablename__ = "storage_credentials"

    access_key_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    secret_ciphertext: Mapped[str] = mapped_column(Text)
    # NULL: the local admin's (made with no users).
    user_id: Mapped[str | None] = mapped_column(String(64), index=True)
    # A job's own credentials die with the job.
    job_id: Mapped[str | None] = mapped_column(
        String(64), ForeignKey("jobs.job_id", ondelete="CASCADE"), index=True
    )
    bucket: Mapped[str] = mapped_column(String(63))
    prefix: Mapped[str] = mapped_column(String(1024), default="")
    can_write: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class JobDeliveryModel(Base):
    """Where a job's outputs go once it has trained: home to its output folder (`outputs`),
    to Hugging Face Hub (`hub`), to an external bucket (`s3`). One row each, with its state, so
    a failure is shown and can be retried, never lost. Secrets a delivery needs are in
    job_secrets, never here."""

    __tablename__ = "job_deliveries"

    job_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("jobs.job_id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # pending, running, done, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    # Where it went: a folder, a repository URL, an s3:// URL.
    target: Mapped[str | None] = mapped_column(Text)
    # The delivery's settings without secrets (repository id, bucket, prefix, endpoint...).
    settings: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
