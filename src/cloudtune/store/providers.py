"""Queries on provider settings, webhook deliveries and stored job logs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from cloudtune.store.tables import JobLogModel, ProviderSettingsModel, WebhookDeliveryModel


def get_settings(session: Session, provider: str) -> ProviderSettingsModel | None:
    return session.get(ProviderSettingsModel, provider)


def save_settings(
    session: Session,
    provider: str,
    *,
    at: datetime,
    settings: dict[str, Any] | None = None,
    token_ciphertext: str | None = None,
    clear_token: bool = False,
) -> None:
    row = session.get(ProviderSettingsModel, provider, with_for_update=True)
    if row is None:
        row = ProviderSettingsModel(provider=provider, settings={}, updated_at=at)
        session.add(row)
    if settings is not None:
        row.settings = settings
    if token_ciphertext is not None:
        row.token_ciphertext = token_ciphertext
    if clear_token:
        row.token_ciphertext = None
    row.updated_at = at


def claim_webhook(session: Session, provider: str, webhook_id: str, at: datetime) -> None:
    """Raises IntegrityError when this delivery was already applied."""
    session.add(WebhookDeliveryModel(provider=provider, webhook_id=webhook_id, received_at=at))
    session.flush()


def webhook_seen(session: Session, provider: str, webhook_id: str) -> bool:
    return session.get(WebhookDeliveryModel, (provider, webhook_id)) is not None


def forget_webhooks_before(session: Session, before: datetime) -> None:
    session.execute(delete(WebhookDeliveryModel).where(WebhookDeliveryModel.received_at < before))


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
