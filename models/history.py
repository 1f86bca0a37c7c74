"""The history the API forgets: balance snapshots and link status transitions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, tstz


class BalanceSnapshot(Base):
    """One row for an account's first observation and one per observed change."""

    __tablename__ = "balance_snapshots"
    __table_args__ = (
        Index(None, "account_id", "observed_at"),
        {
            "comment": "Balance history: a row at the first observation and at every observed "
            "change; none for an unchanged poll"
        },
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, comment="Surrogate key")
    account_id: Mapped[str] = mapped_column(
        Text, ForeignKey("accounts.id"), nullable=False, comment="The account"
    )
    observed_at: Mapped[datetime] = mapped_column(
        tstz(), nullable=False, comment="When fintoc-sync observed this balance"
    )
    balance_available: Mapped[int | None] = mapped_column(
        BigInteger, comment="Available, minor units"
    )
    balance_current: Mapped[int | None] = mapped_column(BigInteger, comment="Current, minor units")
    balance_limit: Mapped[int | None] = mapped_column(BigInteger, comment="Limit, minor units")
    currency: Mapped[str | None] = mapped_column(Text, comment="ISO 4217 code of the amounts")
    sync_run_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("sync_runs.id"), comment="The run that observed it"
    )


class LinkStatusTransition(Base):
    """One row for a link's first observed status and one per observed change."""

    __tablename__ = "link_status_transitions"
    __table_args__ = (
        Index(None, "link_id", "observed_at"),
        Index(None, "to_status", "observed_at"),
        {"comment": "Link status history: first observation (from_status null) and every change"},
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, comment="Surrogate key")
    link_id: Mapped[str] = mapped_column(
        Text, ForeignKey("links.id"), nullable=False, comment="The link"
    )
    from_status: Mapped[str | None] = mapped_column(
        Text, comment="Status before the change; null for the first observation"
    )
    to_status: Mapped[str] = mapped_column(Text, nullable=False, comment="Status observed")
    observed_at: Mapped[datetime] = mapped_column(
        tstz(), nullable=False, comment="When fintoc-sync observed the change"
    )
    sync_run_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("sync_runs.id"), comment="The run that observed it"
    )
