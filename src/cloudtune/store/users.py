"""Queries on users, sessions, API keys and one-time setup markers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from cloudtune.store.tables import ApiKeyModel, SessionModel, SetupMarkerModel, UserModel


def count_users(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(UserModel)) or 0)


def count_admins(session: Session) -> int:
    query = select(func.count()).select_from(UserModel).where(UserModel.role == "admin")
    return int(session.scalar(query) or 0)


def add_user(session: Session, user: UserModel) -> None:
    session.add(user)
    session.flush()


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


def touch_api_key(session: Session, key_id: str, at: datetime) -> None:
    session.execute(update(ApiKeyModel).where(ApiKeyModel.id == key_id).values(last_used_at=at))
