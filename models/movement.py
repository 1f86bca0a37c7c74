"""Bank movements (Fintoc Movement object), their change log, backfill checkpoints."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Index, Integer, Text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, SeenMixin, tstz


class Movement(SeenMixin, Base):
    """The latest known state of a movement; changes are kept in movement_changes."""

    __tablename__ = "movements"
    __table_args__ = (
        Index(None, "account_id", "post_date"),
        {"comment": "Bank movements; soft-deleted (removed_at) when the bank drops them"},
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True, comment="Fintoc movement id")
    # No ForeignKey: the check it runs per inserted row was 40% of Postgres's work in a
    # backfill; every writer stores the account first and writes under a lock on it
    # (migration 0007, docs/decisions/0010-load-path.md).
    account_id: Mapped[str] = mapped_column(Text, nullable=False, comment="The account")
    amount: Mapped[int] = mapped_column(
        BigInteger, nullable=False, comment="Signed amount in minor units: + in, - out"
    )
    currency: Mapped[str | None] = mapped_column(Text, comment="ISO 4217 code of amount")
    description: Mapped[str | None] = mapped_column(Text, comment="The bank's description")
    post_date: Mapped[datetime] = mapped_column(
        tstz(), nullable=False, comment="Accounting date (midnight UTC); since/until filter on it"
    )
    transaction_date: Mapped[datetime | None] = mapped_column(
        tstz(), comment="When the operation happened, often null"
    )
    type: Mapped[str | None] = mapped_column(Text, comment="transfer, check, other (free text)")
    status: Mapped[str | None] = mapped_column(
        Text, comment="confirmed, pending, reversed, duplicated (free text)"
    )
    pending: Mapped[bool | None] = mapped_column(
        Boolean, comment="True while a check is unconfirmed"
    )
    reference_id: Mapped[str | None] = mapped_column(Text, comment="Bank operation/document number")
    comment: Mapped[str | None] = mapped_column(Text, comment="Transfer comment (glosa)")
    sender_holder_id: Mapped[str | None] = mapped_column(Text, comment="Sender's tax id")
    sender_holder_name: Mapped[str | None] = mapped_column(Text, comment="Sender's name")
    sender_number: Mapped[str | None] = mapped_column(Text, comment="Sender's account number")
    sender_institution_id: Mapped[str | None] = mapped_column(
        Text, comment="Sender's institution id"
    )
    recipient_holder_id: Mapped[str | None] = mapped_column(Text, comment="Recipient's tax id")
    recipient_holder_name: Mapped[str | None] = mapped_column(Text, comment="Recipient's name")
    recipient_number: Mapped[str | None] = mapped_column(Text, comment="Recipient's account number")
    recipient_institution_id: Mapped[str | None] = mapped_column(
        Text, comment="Recipient's institution id"
    )
    updated_at: Mapped[datetime | None] = mapped_column(
        tstz(), comment="When fintoc-sync last recorded a change to this row"
    )
    removed_at: Mapped[datetime | None] = mapped_column(
        tstz(), comment="Set when a complete re-read no longer returned it; cleared if it returns"
    )


class MovementChange(Base):
    """One row per observed change of a stored movement (status, text, transfer data)."""

    __tablename__ = "movement_changes"
    __table_args__ = (
        Index(None, "movement_id", "observed_at"),
        Index(None, "account_id", "observed_at"),
        {"comment": "Change log of movements: updated fields, removals and restorations"},
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, comment="Surrogate key")
    movement_id: Mapped[str] = mapped_column(
        Text, ForeignKey("movements.id"), nullable=False, comment="The movement"
    )
    account_id: Mapped[str] = mapped_column(Text, nullable=False, comment="Its account")
    kind: Mapped[str] = mapped_column(Text, nullable=False, comment="updated, removed or restored")
    changed_fields: Mapped[list[str]] = mapped_column(
        ARRAY(Text), nullable=False, comment="Names of the columns that changed"
    )
    old_values: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, comment="Changed columns before"
    )
    new_values: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, comment="Changed columns after"
    )
    from_status: Mapped[str | None] = mapped_column(
        Text, comment="status before (for quick queries)"
    )
    to_status: Mapped[str | None] = mapped_column(Text, comment="status after")
    observed_at: Mapped[datetime] = mapped_column(
        tstz(), nullable=False, comment="When fintoc-sync observed the change"
    )


class BackfillChunk(Base):
    """A backfill chunk (account × date range) that was read completely and committed."""

    __tablename__ = "backfill_chunks"
    __table_args__ = {"comment": "Checkpoints of finished backfill chunks, for resume"}

    account_id: Mapped[str] = mapped_column(
        Text, ForeignKey("accounts.id"), primary_key=True, comment="The account"
    )
    since: Mapped[date] = mapped_column(
        Date, primary_key=True, comment="First post_date of the chunk"
    )
    until: Mapped[date] = mapped_column(
        Date, primary_key=True, comment="Exclusive end post_date of the chunk"
    )
    movements: Mapped[int] = mapped_column(Integer, nullable=False, comment="Movements read")
    completed_at: Mapped[datetime] = mapped_column(
        tstz(), nullable=False, comment="When it finished"
    )
