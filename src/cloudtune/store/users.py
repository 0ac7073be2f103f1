"""Queries on users, sessions, API keys, login budgets and one-time setup markers."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Float,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from cloudtune.store.db import Database
from cloudtune.store.tables import (
    ApiKeyModel,
    AuthEpochModel,
    LoginBudgetModel,
    SessionModel,
    SetupMarkerModel,
    UserModel,
)


def count_users(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(UserModel)) or 0)


def any_user(session: Session) -> bool:
    """Whether a user exists (stops at the first row, unlike a count)."""
    return session.scalar(select(UserModel.id).limit(1)) is not None


def count_admins(session: Session) -> int:
    query = select(func.count()).select_from(UserModel).where(UserModel.role == "admin")
    return int(session.scalar(query) or 0)


def add_user(session: Session, user: UserModel) -> None:
    session.add(user)
    session.flush()
    bump_auth_epoch(session)


def get_user(session: Session, user_id: str) -> UserModel | None:
    return session.get(UserModel, user_id)


def find_user(session: Session, login: str) -> UserModel | None:
    """By username or e-mail, case-insensitively."""
    lowered = login.strip().lower()
    return session.scalar(
        select(UserModel).where(
            or_(func.lower(UserModel.username) == lowered, func.lower(UserModel.email) == lowered)
        )
    )


def list_users(session: Session) -> list[UserModel]:
    return list(session.scalars(select(UserModel).order_by(UserModel.created_at)))


def set_password_hash(session: Session, user_id: str, password_hash: str) -> None:
    session.execute(
        update(UserModel).where(UserModel.id == user_id).values(password_hash=password_hash)
    )
    bump_auth_epoch(session)


def set_last_login(session: Session, user_id: str, at: datetime) -> None:
    # Not a change to who may do what: the auth epoch stays.
    session.execute(update(UserModel).where(UserModel.id == user_id).values(last_login_at=at))


def mark_setup(session: Session, name: str, at: datetime) -> None:
    """Raises IntegrityError if this setup step already happened."""
    session.add(SetupMarkerModel(name=name, at=at))
    session.flush()


def add_session(session: Session, row: SessionModel) -> None:
    session.add(row)


def get_session(session: Session, token_hash: str) -> SessionModel | None:
    return session.get(SessionModel, token_hash)


def delete_session(session: Session, token_hash: str) -> None:
    session.execute(delete(SessionModel).where(SessionModel.token_hash == token_hash))
    bump_auth_epoch(session)


def delete_expired_sessions(session: Session, now: datetime) -> None:
    session.execute(delete(SessionModel).where(SessionModel.expires_at <= now))


def add_api_key(session: Session, row: ApiKeyModel) -> None:
    session.add(row)


def find_api_key(session: Session, key_hash: str) -> ApiKeyModel | None:
    return session.scalar(select(ApiKeyModel).where(ApiKeyModel.key_hash == key_hash))


def get_api_key(session: Session, key_id: str) -> ApiKeyModel | None:
    return session.get(ApiKeyModel, key_id)


def list_api_keys(session: Session, *, user_id: str | None, everyone: bool) -> list[ApiKeyModel]:
    query = select(ApiKeyModel).order_by(ApiKeyModel.created_at)
    if not everyone:
        query = query.where(
            ApiKeyModel.user_id.is_(None) if user_id is None else ApiKeyModel.user_id == user_id
        )
    return list(session.scalars(query))


def revoke_api_key(session: Session, key_id: str, at: datetime) -> None:
    session.execute(
        update(ApiKeyModel)
        .where(ApiKeyModel.id == key_id, ApiKeyModel.revoked_at.is_(None))
        .values(revoked_at=at)
    )
    bump_auth_epoch(session)


def touch_api_key(session: Session, key_id: str, at: datetime) -> None:
    session.execute(update(ApiKeyModel).where(ApiKeyModel.id == key_id).values(last_used_at=at))


# -- the auth epoch: moves with every change to who may do what ----------------------------


def bump_auth_epoch(session: Session) -> None:
    """Call in the transaction that changes users, sessions or keys."""
    session.execute(
        update(AuthEpochModel).where(AuthEpochModel.id == 1).values(value=AuthEpochModel.value + 1)
    )


_EPOCH_SQL = "SELECT value FROM auth_epoch WHERE id = 1"


def peek_auth_epoch(db: Database) -> int | None:
    """The current epoch, read without a session or a thread hop where that is cheap (SQLite,
    in process: microseconds); None where it is not (the caller then resolves credentials in
    full)."""
    value = db.peek_scalar(_EPOCH_SQL)
    return None if value is None else int(value)


# -- login budgets: a token bucket per key, spent and refilled by the database ----------------


# Epoch seconds near 1.7e9 are exact to ~2e-7 s, so "a whole token back" may compute as
# 0.9999999…; a millionth of an attempt of slack keeps that from refusing it.
_SLACK = 1e-6


def _refilled(capacity: float, refill_per_second: float, now: float) -> ColumnElement[float]:
    """The bucket's tokens at `now`, computed in SQL from the stored row (capped at capacity;
    a clock that went backwards refills nothing)."""
    stored = LoginBudgetModel.tokens
    elapsed = literal(now, Float) - LoginBudgetModel.updated_at
    grown = stored + elapsed * literal(refill_per_second, Float)
    return case(
        (elapsed <= 0, stored),
        (grown >= literal(capacity, Float), literal(capacity, Float)),
        else_=grown,
    )


def _spend(
    session: Session, key: str, capacity: float, refill_per_second: float, now: float
) -> bool:
    refilled = _refilled(capacity, refill_per_second, now)
    # One statement: the WHERE is re-checked on the row a concurrent writer left (PostgreSQL
    # serialises UPDATEs of one row; SQLite serialises write transactions), so two attempts
    # can never both spend the last token.
    result = session.execute(
        update(LoginBudgetModel)
        .where(LoginBudgetModel.key == key, refilled >= 1 - _SLACK)
        .values(
            tokens=refilled - 1,
            updated_at=case(
                (LoginBudgetModel.updated_at < now, literal(now, Float)),
                else_=LoginBudgetModel.updated_at,
            ),
        )
        .execution_options(synchronize_session=False)
    )
    return cast(CursorResult[Any], result).rowcount == 1


def take_login_token(
    session: Session, key: str, capacity: float, refill_per_second: float, now: float
) -> bool:
    """Spend one token of `key`'s bucket; False when it holds less than one. `now` is in
    seconds since the epoch. Atomic under concurrency on SQLite and PostgreSQL."""
    if _spend(session, key, capacity, refill_per_second, now):
        return True
    # No row yet (a new key), or an empty bucket: a new key starts full, less this attempt.
    insert = (
        postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    )
    # RETURNING, not rowcount: the driver's rowcount of an ON CONFLICT insert is not portable.
    inserted = session.scalar(
        insert(LoginBudgetModel)
        .values(key=key, tokens=float(capacity) - 1, updated_at=now)
        .on_conflict_do_nothing(index_elements=[LoginBudgetModel.key])
        .returning(LoginBudgetModel.key)
    )
    if inserted is not None:
        return True
    # The row exists: it was empty, or a concurrent first attempt inserted it after our UPDATE.
    return _spend(session, key, capacity, refill_per_second, now)


def login_token_wait(
    session: Session, key: str, capacity: float, refill_per_second: float, now: float
) -> int:
    """Whole seconds until `key`'s bucket holds a token again (at least 1)."""
    refilled = session.scalar(
        select(_refilled(capacity, refill_per_second, now)).where(LoginBudgetModel.key == key)
    )
    missing = 1 - float(refilled if refilled is not None else capacity)
    return max(1, math.ceil(round(missing / refill_per_second, 3)))


def refill_login_budget(session: Session, key: str) -> None:
    """Full again (a missing row is a full bucket)."""
    session.execute(delete(LoginBudgetModel).where(LoginBudgetModel.key == key))


def delete_idle_login_budgets(session: Session, idle_since: float) -> None:
    """Buckets untouched since `idle_since` have refilled completely; a missing row is the
    same thing, so they need not be kept."""
    session.execute(delete(LoginBudgetModel).where(LoginBudgetModel.updated_at < idle_since))


# -- changing and disabling accounts --------------------------------------------------------


def change_user(session: Session, user_id: str, **values: object) -> None:
    session.execute(update(UserModel).where(UserModel.id == user_id).values(**values))
    bump_auth_epoch(session)


def lock_active_admins(session: Session) -> int:
    """How many active admins there are, their rows locked for this transaction: two admins
    demoting or disabling each other at once cannot both see the other still there."""
    query = (
        select(UserModel.id)
        .where(UserModel.role == "admin", UserModel.is_active.is_(True))
        .with_for_update()
    )
    return len(list(session.scalars(query)))


def end_access_of(session: Session, user_id: str, at: datetime) -> None:
    """Every session of the user ends and every API key is revoked (a disabled account)."""
    session.execute(delete(SessionModel).where(SessionModel.user_id == user_id))
    session.execute(
        update(ApiKeyModel)
        .where(ApiKeyModel.user_id == user_id, ApiKeyModel.revoked_at.is_(None))
        .values(revoked_at=at)
    )
    bump_auth_epoch(session)
