"""The webhook inbox in Postgres: store once per id, claim with SKIP LOCKED, settle.

Functions take the caller's session and never commit (the run layer owns transactions).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from models import WebhookEvent
from sync.api.webhooks import Event


def store_event(session: Session, event: Event, now: datetime) -> bool:
    """Insert the event if its id is new (True); a redelivery only counts (False)."""
    stmt = (
        insert(WebhookEvent)
        .values(
            id=event.id,
            type=event.type,
            mode=event.mode,
            created_at=event.created_at,
            received_at=now,
            status="received",
            attempts=0,
            next_attempt_at=now,
            subject=event.subject,
            payload=event.payload,
            deliveries=1,
        )
        .on_conflict_do_update(
            index_elements=["id"], set_={"deliveries": WebhookEvent.deliveries + 1}
        )
        .returning(WebhookEvent.attempts, WebhookEvent.deliveries)
    )
    _attempts, deliveries = session.execute(stmt).one()
    return bool(deliveries == 1)


def claim_next(session: Session, now: datetime) -> WebhookEvent | None:
    """The oldest due ``received`` event, row-locked until the transaction ends."""
    query = (
        select(WebhookEvent)
        .where(WebhookEvent.status == "received", WebhookEvent.next_attempt_at <= now)
        .order_by(WebhookEvent.next_attempt_at, WebhookEvent.received_at, WebhookEvent.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    return session.scalars(query).first()


def claim_same_subject(session: Session, event: WebhookEvent, now: datetime) -> list[WebhookEvent]:
    """Other due events of the same type and subject, locked: one sync settles them all."""
    if event.subject is None:
        return []
    query = (
        select(WebhookEvent)
        .where(
            WebhookEvent.status == "received",
            WebhookEvent.next_attempt_at <= now,
            WebhookEvent.subject == event.subject,
            WebhookEvent.type.like(event.type.split(".")[0] + ".%"),
            WebhookEvent.id != event.id,
        )
        .limit(500)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(query))


def settle(
    session: Session, ids: Sequence[str], status: str, now: datetime, error: str | None = None
) -> None:
    """Mark events processed, ignored or failed (one more attempt counted)."""
    session.execute(
        update(WebhookEvent)
        .where(WebhookEvent.id.in_(list(ids)))
        .values(
            status=status,
            processed_at=now,
            attempts=WebhookEvent.attempts + 1,
            error=error,
        )
    )


def postpone(
    session: Session, event_id: str, next_at: datetime, error: str, *, count: bool = True
) -> None:
    """Leave an event ``received`` for a later attempt (``count``: it was an attempt)."""
    values: dict[str, object] = {"next_attempt_at": next_at, "error": error}
    if count:
        values["attempts"] = WebhookEvent.attempts + 1
    session.execute(update(WebhookEvent).where(WebhookEvent.id == event_id).values(**values))


def oldest_unprocessed(session: Session) -> datetime | None:
    """received_at of the oldest event still ``received``."""
    return session.scalar(
        select(func.min(WebhookEvent.received_at)).where(WebhookEvent.status == "received")
    )


def counts_by_status(session: Session) -> dict[str, int]:
    """Events by status."""
    rows = session.execute(
        select(WebhookEvent.status, func.count()).group_by(WebhookEvent.status)
    ).all()
    return {str(status): int(n) for status, n in rows}
