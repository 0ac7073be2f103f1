"""An admin changes an account: its role, its display name, whether it may sign in.

Disabling is what removing a user means here: the account can no longer sign in, its
sessions end and its API and storage keys are revoked in the same transaction, and its active
jobs are cancelled right after; its finished jobs, configs and files stay, their owner still
named (`PATCH ... {"is_active": true}` brings the account back, with new keys to make). The
last active admin can be neither demoted nor disabled, and nobody disables their own account,
so a server never locks its admins out."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.orm import Session

from cloudtune.domain.accounts import User
from cloudtune.domain.jobs import ACTIVE_STATUSES, utcnow
from cloudtune.domain.principal import LOCAL_ADMIN, ROLE_PERMISSIONS, ROLES, Principal
from cloudtune.errors import CloudtuneError, ConflictError, InvalidInputError, NotFoundError
from cloudtune.services import jobs as job_service
from cloudtune.services.context import Context
from cloudtune.services.users import _display_name, refuse_unknown_fields, user_model_to_user
from cloudtune.store import jobs as job_store
from cloudtune.store import storage as storage_store
from cloudtune.store import users as user_store
from cloudtune.store.tables import UserModel

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class UserChange:
    """What a request asks to change; None: leave as it is."""

    role: str | None = None
    display_name: str | None = None  # "": cleared (answers show the username again)
    is_active: bool | None = None
    unknown_fields: tuple[str, ...] = ()


def change_user(ctx: Context, caller: Principal, user_id: str, change: UserChange) -> User:
    caller.require("user.manage")
    refuse_unknown_fields(change.unknown_fields)
    role, display_name, is_active = change.role, change.display_name, change.is_active
    if role is not None and role not in ROLE_PERMISSIONS:
        raise InvalidInputError(
            f"unknown role {role!r}; roles: {', '.join(ROLES)}", code="invalid_role"
        )
    values: dict[str, object] = {}
    if display_name is not None:
        values["display_name"] = _display_name(display_name) if display_name else None
    with ctx.db.write() as session:
        row = _existing(session, user_id)
        if role is not None and role != row.role:
            values["role"] = role
        if is_active is not None and is_active != row.is_active:
            values["is_active"] = is_active
        leaves_admins = (
            row.role == "admin"
            and row.is_active
            and (values.get("role", "admin") != "admin" or values.get("is_active") is False)
        )
        if leaves_admins and user_store.lock_active_admins(session) <= 1:
            raise ConflictError(
                f"{row.username} is the last active admin: make another admin first",
                code="last_admin",
            )
        if values.get("is_active") is False:
            _refuse_own(caller, row.id)
            _end_access(session, row.id)
        if values:
            user_store.change_user(session, row.id, **values)
            session.refresh(row)
        return user_model_to_user(row)


async def update_user(ctx: Context, caller: Principal, user_id: str, change: UserChange) -> User:
    """`change_user`, then, for an account it disabled, its active jobs cancelled (after the
    change is committed: a provider is called outside any transaction), so a disabled account
    stops spending."""
    changed = await ctx.in_thread(change_user, ctx, caller, user_id, change)
    if change.is_active is False:
        await _cancel_jobs_of(ctx, user_id)
    return changed


async def disable_user(ctx: Context, caller: Principal, user_id: str) -> User:
    return await update_user(ctx, caller, user_id, UserChange(is_active=False))


async def _cancel_jobs_of(ctx: Context, user_id: str) -> None:
    def active() -> list[str]:
        flt = job_store.JobFilter(statuses=tuple(ACTIVE_STATUSES), user_id=user_id, only_user=True)
        with ctx.db.read() as session:
            return [
                job.job_id for job in job_store.list_jobs(session, flt, limit=10_000, offset=0)
            ]

    for job_id in await ctx.in_thread(active):
        try:
            # The system acts here, not the admin's key (which may lack job.cancel.all).
            await job_service.cancel_job(ctx, LOCAL_ADMIN, job_id)
        except CloudtuneError as exc:
            log.warning("job %s of disabled user %s not cancelled: %s", job_id, user_id, exc)


def _existing(session: Session, user_id: str) -> UserModel:
    row = user_store.get_user(session, user_id)
    if row is None:
        raise NotFoundError(f"User not found: {user_id}", code="user_not_found")
    return row


def _refuse_own(caller: Principal, user_id: str) -> None:
    if caller.user_id == user_id:
        raise ConflictError(
            "You cannot disable your own account; another admin can", code="own_account"
        )


def _end_access(session: Session, user_id: str) -> None:
    now = utcnow()
    user_store.end_access_of(session, user_id, now)
    storage_store.revoke_user_credentials(session, user_id, at=now)
