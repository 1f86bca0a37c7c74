"""Accounts under a link, with their latest balance (Fintoc Account object)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Index, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, SeenMixin, tstz


class Account(SeenMixin, Base):
    """The latest known state of an account; balance history is in balance_snapshots."""

    __tablename__ = "accounts"
    __table_args__ = (
        Index(None, "link_id"),
        {"comment": "Bank accounts under links, with the latest observed balance"},
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True, comment="Fintoc account id")
    link_id: Mapped[str] = mapped_column(
        Text, ForeignKey("links.id"), nullable=False, comment="The link that owns the account"
    )
    name: Mapped[str | None] = mapped_column(
        Text, comment="Standardized name, e.g. Cuenta Corriente"
    )
    official_name: Mapped[str | None] = mapped_column(
        Text, comment="The bank's name for the product"
    )
    number: Mapped[str | None] = mapped_column(Text, comment="Account number (may be null)")
    type: Mapped[str | None] = mapped_column(
        Text, comment="checking_account, sight_account, line_of_credit, … (free text)"
    )
    currency: Mapped[str | None] = mapped_column(Text, comment="ISO 4217 code of the balances")
    holder_id: Mapped[str | None] = mapped_column(Text, comment="Tax id of the account holder")
    holder_name: Mapped[str | None] = mapped_column(Text, comment="Name of the account holder")
    balance_available: Mapped[int | None] = mapped_column(
        BigInteger, comment="Available balance, integer minor units of currency"
    )
    balance_current: Mapped[int | None] = mapped_column(
        BigInteger, comment="Current (ledger) balance, integer minor units"
    )
    balance_limit: Mapped[int | None] = mapped_column(
        BigInteger, comment="Credit limit, integer minor units"
    )
    refreshed_at: Mapped[datetime | None] = mapped_column(
        tstz(), comment="When Fintoc last refreshed the account; null until the first refresh"
    )
    next_refresh: Mapped[datetime | None] = mapped_column(
        tstz(), comment="Fintoc's next scheduled refresh"
    )
    refresh_status: Mapped[str | None] = mapped_column(
        Text, comment="Fintoc refresh status, free text"
    )
    removed_from_link: Mapped[bool | None] = mapped_column(
        Boolean, comment="True once the bank stopped reporting this account"
    )


class MovementCursor(Base):
    """How far the incremental movement sync has read an account."""

    __tablename__ = "movement_cursors"
    __table_args__ = {"comment": "Per-account cursor of the incremental movement sync"}

    account_id: Mapped[str] = mapped_column(
        Text, ForeignKey("accounts.id"), primary_key=True, comment="The account"
    )
    synced_through: Mapped[date] = mapped_column(
        Date,
        nullable=False,
        comment="Every movement with post_date on or before this date was read completely",
    )
    updated_at: Mapped[datetime] = mapped_column(
        tstz(), nullable=False, comment="When it last moved"
    )
    source_refreshed_at: Mapped[datetime | None] = mapped_column(
        tstz(),
        comment="The account's refreshed_at (from Fintoc) when its movements were last read "
        "completely; while it has not moved, a sync need not read them again",
    )
    read_at: Mapped[datetime | None] = mapped_column(
        tstz(), comment="When the movements were last read completely (sync or backfill)"
    )
