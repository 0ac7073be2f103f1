"""Queries on named configs' owners and secrets (their other values live on disk)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cloudtune.store.tables import NamedConfigModel


def get_config_row(session: Session, name: str) -> NamedConfigModel | None:
    return session.get(NamedConfigModel, name)


def config_rows(session: Session, names: Iterable[str]) -> dict[str, NamedConfigModel]:
    wanted = list(names)
    if not wanted:
        return {}
    rows = session.scalars(select(NamedConfigModel).where(NamedConfigModel.name.in_(wanted)))
    return {row.name: row for row in rows}


def claim_config_row(
    session: Session, name: str, *, owner_user_id: str | None, at: datetime
) -> None:
    """Insert the row of a new config; raises IntegrityError if the name is taken."""
    session.add(
        NamedConfigModel(name=name, owner_user_id=owner_user_id, created_at=at, updated_at=at)
    )
    session.flush()


def save_config_row(
    session: Session,
    name: str,
    *,
    owner_user_id: str | None,
    secrets_ciphertext: str | None,
    description: str | None,
    at: datetime,
) -> None:
    row = session.get(NamedConfigModel, name, with_for_update=True)
    if row is None:
        session.add(
            NamedConfigModel(
                name=name,
                owner_user_id=owner_user_id,
                secrets_ciphertext=secrets_ciphertext,
                description=description,
                created_at=at,
                updated_at=at,
            )
        )
        return
    row.secrets_ciphertext = secrets_ciphertext
    row.description = description
    row.updated_at = at


def delete_config_row(session: Session, name: str) -> None:
    session.execute(delete(NamedConfigModel).where(NamedConfigModel.name == name))
