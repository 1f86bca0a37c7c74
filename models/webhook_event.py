"""Webhook events: the durable inbox of POST /webhooks/fintoc."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Index, Integer, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, tstz

EVENT_STATUSES = ("received", "processed", "ignored", "failed")


class WebhookEvent(Base):
    """One Fintoc event, however often it was delivered (the id is the key)."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        CheckConstraint(
            "status IN ('received', 'processed', 'ignored', 'failed')", name="status_known"
        ),
        # the worker's queue: unprocessed events by due time
        Index(
            None,
            "next_attempt_at",
            postgresql_where=text("status = 'received'"),
        ),
        Index(None, "subject"),
        {
            "comment": "Fintoc webhook events, one row per event id; payloads never hold a "
            "link_token (it goes to link_tokens, encrypted)"
        },
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True, comment="Fintoc event id (evt_…)")
    type: Mapped[str] = mapped_column(
        Text, nullable=False, comment="Event type, e.g. link.created (free text)"
    )
    mode: Mapped[str | None] = mapped_column(Text, comment="test or live")
    created_at: Mapped[datetime | None] = mapped_column(
        tstz(), comment="When Fintoc created the event"
    )
    received_at: Mapped[datetime] = mapped_column(
        tstz(), nullable=False, comment="When fintoc-sync first stored it (first delivery)"
    )
    processed_at: Mapped[datetime | None] = mapped_column(
        tstz(), comment="When it was applied, ignored or given up on"
    )
    status: Mapped[str] = mapped_column(
        Text, nullable=False, comment="received, processed, ignored or failed"
    )
    attempts: Mapped[int] = mapped_column(
        Integer, nullable=False, server_default="0", comment="Processing attempts so far"
    )
    next_attempt_at: Mapped[datetime] = mapped_column(
        tstz(), nullable=False, comment="Earliest time the worker tries it (again)"
    )
    error: Mapped[str | None] = mapped_column(
        Text, comment="The last processing error (redacted), null after a success"
    )
    subject: Mapped[str | None] = mapped_column(
        Text, comment="What the event is about: the link or account id it syncs"
    )
    deliveries: Mapped[int] = mapped_column(
        Integer, nullable=False, server_default="1", comment="How often Fintoc delivered it"
    )
    payload: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, comment="The event as delivered, every link_token removed"
    )
