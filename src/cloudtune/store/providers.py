"""Queries on provider settings and webhook deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from cloudtune.store.tables import ProviderSettingsModel, WebhookDeliveryModel


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
