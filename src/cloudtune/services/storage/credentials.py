"""Who may touch which objects: access keys (SigV4), a job's upload token, or an API caller.

Every grant is one bucket (or, for an admin caller, all) and a key prefix, reading or also
writing. Prefixes: an admin's keys may name any prefix (default: the whole bucket); anyone
else's are under `<username>/`; a job's are `<username>/<job_id>/` (`<job_id>/` for a job made
with no users), in the bucket `outputs`. A job's access key and upload token stop working the
moment its job is terminal: the job's status is read with the key on every request, so this
holds across replicas.

Secrets are stored with the server's SecretBox (Fernet), not hashed: checking a signature
needs the secret itself. One is shown once, when made."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cloudtune.domain.jobs import TERMINAL_STATUSES, JobStatus, utcnow
from cloudtune.domain.principal import ALL_PERMISSIONS, ROLE_PERMISSIONS, Principal
from cloudtune.domain.storage import JobStorageCredentials
from cloudtune.errors import (
    AuthenticationError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from cloudtune.services.context import Context
from cloudtune.services.storage import errors
from cloudtune.services.storage.names import check_bucket, check_key
from cloudtune.services.users import refuse_unknown_fields
from cloudtune.store import storage as store
from cloudtune.store import users as user_store

ACCESS_KEY_PREFIX = "CTAK"
JOB_BUCKET = "outputs"
MAX_EXPIRES_DAYS = 365
DEFAULT_EXPIRES_DAYS = 30
# A job's key also has a date: the job's end normally stops it first.
JOB_KEY_DAYS = 30


@dataclass(frozen=True, slots=True)
class Grant:
    """What one request may touch. bucket None: every bucket."""

    bucket: str | None
    prefix: str
    can_write: bool
    user_id: str | None
    job_id: str | None
    via: str  # sigv4, upload_token or caller
    can_read: bool = True

    def covers(self, bucket: str, key: str) -> bool:
        return (self.bucket is None or self.bucket == bucket) and key.startswith(self.prefix)

    def check(self, bucket: str, key: str, *, write: bool) -> None:
        if not self.covers(bucket, key):
            raise errors.access_denied(
                f"this credential reaches only {self.bucket or '*'}/{self.prefix}*"
            )
        if write and not self.can_write:
            raise errors.access_denied("this credential may only read")
        if not write and not self.can_read:
            raise errors.access_denied("this credential may only write")


@dataclass(frozen=True, slots=True)
class StorageCredential:
    access_key_id: str
    bucket: str
    prefix: str
    can_write: bool
    user_id: str | None
    job_id: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class NewStorageCredential:
    """The one answer that carries the secret."""

    credential: StorageCredential
    secret_access_key: str


def _public(row: store.CredentialRow) -> StorageCredential:
    return StorageCredential(
        access_key_id=row.access_key_id,
        bucket=row.bucket,
        prefix=row.prefix,
        can_write=row.can_write,
        user_id=row.user_id,
        job_id=row.job_id,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


def is_admin(caller: Principal) -> bool:
    return caller.permissions >= ALL_PERMISSIONS


def own_prefix(caller: Principal) -> str:
    """Where a non-admin's keys and reads are confined: `<username>/`."""
    return caller.storage_prefix


def _new_pair() -> tuple[str, str]:
    return ACCESS_KEY_PREFIX + secrets.token_hex(8).upper(), secrets.token_urlsafe(30)


def create_credential(
    ctx: Context,
    caller: Principal,
    *,
    bucket: str,
    expires_days: int | None,
    prefix: str | None,
    access: str | None,
    unknown_fields: Iterable[str] = (),
) -> NewStorageCredential:
    if not (caller.has("storage.read") or caller.has("storage.write")):
        caller.require("storage.read")
    refuse_unknown_fields(unknown_fields)
    check_bucket(bucket)
    days = DEFAULT_EXPIRES_DAYS if expires_days is None else expires_days
    if not 1 <= days <= MAX_EXPIRES_DAYS:
        raise InvalidInputError(
            f"expires_days must be between 1 and {MAX_EXPIRES_DAYS}", code="invalid_input"
        )
    if access not in (None, "read", "read-write"):
        raise InvalidInputError("access must be 'read' or 'read-write'", code="invalid_input")
    if access == "read-write":
        caller.require("storage.write")
    can_write = caller.has("storage.write") and access != "read"
    base = own_prefix(caller)
    chosen = base if prefix is None else prefix
    if chosen:
        check_key(chosen)
    if not chosen.startswith(base):
        raise PermissionDeniedError(
            f"your storage keys reach only keys under {base!r}", code="permission_denied"
        )
    row, secret = _mint(
        ctx,
        user_id=caller.user_id,
        job_id=None,
        bucket=bucket,
        prefix=chosen,
        can_write=can_write,
        days=days,
    )
    return NewStorageCredential(_public(row), secret)


def _mint(
    ctx: Context,
    *,
    user_id: str | None,
    job_id: str | None,
    bucket: str,
    prefix: str,
    can_write: bool,
    days: int,
) -> tuple[store.CredentialRow, str]:
    """A new key pair, saved with its secret encrypted; the row and the secret (shown once)."""
    now = utcnow()
    access_key_id, secret = _new_pair()
    row = store.CredentialRow(
        access_key_id=access_key_id,
        secret_ciphertext=ctx.secret_box.encrypt(secret),
        user_id=user_id,
        job_id=job_id,
        bucket=bucket,
        prefix=prefix,
        can_write=can_write,
        created_at=now,
        expires_at=now + timedelta(days=days),
        revoked_at=None,
    )
    with ctx.db.write() as session:
        store.insert_credential(session, row)
    return row, secret


def list_credentials(ctx: Context, caller: Principal) -> list[StorageCredential]:
    """The caller's own keys (an admin: everyone's); never a secret."""
    if not (caller.has("storage.read") or caller.has("storage.write")):
        caller.require("storage.read")
    with ctx.db.read() as session:
        rows = store.list_credentials(session, user_id=caller.user_id, everyone=is_admin(caller))
    return [_public(row) for row in rows]


def revoke_credential(ctx: Context, caller: Principal, access_key_id: str) -> None:
    if not (caller.has("storage.read") or caller.has("storage.write")):
        caller.require("storage.read")
    with ctx.db.write() as session:
        row = store.find_credential(session, access_key_id)
        if row is None or not (is_admin(caller) or row.user_id == caller.user_id):
            # Another's key reads as unknown, as another's job does.
            raise NotFoundError("no such storage credential", code="credential_not_found")
        store.revoke_credential(session, access_key_id, at=utcnow())


# -- jobs -----------------------------------------------------------------------------------


def job_prefix(ctx: Context, job_id: str, user_id: str | None) -> str:
    if user_id is None:
        return f"{job_id}/"
    with ctx.db.read() as session:
        user = user_store.get_user(session, user_id)
    return f"{user.username}/{job_id}/" if user is not None else f"{job_id}/"


def mint_job_credentials(ctx: Context, job_id: str, user_id: str | None) -> JobStorageCredentials:
    """A job's own access key: read-write, in the bucket `outputs`, under the job's prefix;
    dead once the job is terminal. Also names the job's upload token (the plain-PUT form's
    `X-Upload-Token`/`X-SimpleTuner-Secret`), which is the job's signed token."""
    prefix = job_prefix(ctx, job_id, user_id)
    row, secret = _mint(
        ctx,
        user_id=user_id,
        job_id=job_id,
        bucket=JOB_BUCKET,
        prefix=prefix,
        can_write=True,
        days=JOB_KEY_DAYS,
    )
    return _job_credentials(ctx, row, secret)


def job_credentials(ctx: Context, job_id: str) -> JobStorageCredentials | None:
    """The key minted at the job's submit, again (a restarted server hands it back to a
    trainer it re-adopts); None once the job has ended, or when the secret is lost."""
    with ctx.db.read() as session:
        row = store.live_job_credential(session, job_id)
    secret = ctx.secret_box.decrypt(row.secret_ciphertext) if row is not None else None
    if row is None or secret is None:
        return None
    return _job_credentials(ctx, row, secret)


def _job_credentials(ctx: Context, row: store.CredentialRow, secret: str) -> JobStorageCredentials:
    assert row.job_id is not None
    return JobStorageCredentials(
        access_key_id=row.access_key_id,
        secret_access_key=secret,
        bucket=row.bucket,
        prefix=row.prefix,
        endpoint_url=f"{ctx.settings.base_url}/api/cloud/storage",
        upload_token=ctx.tokens.job_token(row.job_id),
    )


def end_job_credentials(ctx: Context, job_id: str) -> int:
    """Revoke a job's keys (its end already stops them; this records it). The count revoked."""
    with ctx.db.write() as session:
        return store.revoke_job_credentials(session, job_id, at=utcnow())


# -- per request ----------------------------------------------------------------------------


def grant_for_key(ctx: Context, access_key_id: str) -> tuple[Grant, str]:
    """The grant of an access key and its secret, or the refusal S3 would give."""
    with ctx.db.read() as session:
        row = store.find_credential(session, access_key_id)
        # A key made with no users (nobody's, for no job) reached every prefix: like an API
        # key made then, it stops working once a user exists.
        orphaned = (
            row is not None
            and row.user_id is None
            and row.job_id is None
            and user_store.any_user(session)
        )
    if row is None:
        raise errors.unknown_key()
    if orphaned:
        raise errors.access_denied(
            "This access key was made before users existed; sign in and make a new one"
        )
    if row.revoked_at is not None:
        raise errors.access_denied("The access key has been revoked")
    if row.expires_at is not None and row.expires_at <= utcnow():
        raise errors.access_denied("The access key has expired")
    if row.job_id is not None and (
        row.job_status is None or JobStatus(row.job_status) in TERMINAL_STATUSES
    ):
        raise errors.access_denied("The job this access key belongs to has ended")
    can_write, can_read = row.can_write, True
    if row.user_id is not None:
        can_write, can_read = _owner_allows(row)
    secret = ctx.secret_box.decrypt(row.secret_ciphertext)
    if secret is None:  # the server's key changed: the secret is lost
        raise errors.access_denied("The access key can no longer be used; make a new one")
    grant = Grant(
        row.bucket, row.prefix, can_write, row.user_id, row.job_id, "sigv4", can_read=can_read
    )
    return grant, secret


def _owner_allows(row: store.CredentialRow) -> tuple[bool, bool]:
    """(may write, may read) by the owner's rights now, not those the key was made with: a
    disabled owner's key stops, a demoted one's narrows to what the new role may (its prefix
    must be one the role reaches, writing needs storage.write)."""
    owner = row.owner
    if owner is None or not owner.is_active:
        raise errors.access_denied("The access key's owner can no longer use it")
    if row.job_id is not None:
        return row.can_write, True  # a job's key: its job's prefix, while the job runs
    rights = ROLE_PERMISSIONS.get(owner.role, frozenset())
    reach = "" if rights >= ALL_PERMISSIONS else f"{owner.username}/"
    if not row.prefix.startswith(reach) or not rights & {"storage.read", "storage.write"}:
        raise errors.access_denied("The access key's owner's role no longer reaches this key")
    return row.can_write and "storage.write" in rights, "storage.read" in rights


def grant_for_upload_token(ctx: Context, bucket: str, key: str, token: str) -> Grant:
    """The plain-PUT form: the token is a job's signed token, good for that job's prefix in
    `outputs` while the job is active. The job is named by the key (`[<user>/]<job_id>/…`)."""
    segments = key.split("/")[:2]
    for job_id in segments:
        if not ctx.tokens.check_job_token(job_id, token):
            continue
        with ctx.db.read() as session:
            found = store.job_owner_and_status(session, job_id)
        # The job must run, and its owner still be allowed to act at all.
        if found is None or JobStatus(found[1]) in TERMINAL_STATUSES or not found[2]:
            break
        prefix = job_prefix(ctx, job_id, found[0])
        grant = Grant(JOB_BUCKET, prefix, True, found[0], job_id, "upload_token")
        grant.check(bucket, key, write=True)
        return grant
    raise AuthenticationError(
        "Invalid upload token: it must be the token of an active job, and the key must be "
        "under that job's prefix",
        code="invalid_upload_token",
    )


def grant_for_caller(caller: Principal) -> Grant:
    """An API caller (session, API key, the local admin): storage.read to read, storage.write
    to write; a non-admin only under `<username>/` in any bucket."""
    if not (caller.has("storage.read") or caller.has("storage.write")):
        raise errors.access_denied("Permission denied: storage.read")
    return Grant(
        bucket=None,
        prefix=own_prefix(caller),
        can_write=caller.has("storage.write"),
        user_id=caller.user_id,
        job_id=None,
        via="caller",
        can_read=caller.has("storage.read"),
    )
