"""One row per sync / backfill run, with counts and a redacted error summary."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Integer, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, tstz


class SyncRun(Base):
    """A run of `sync`, `backfill` or a daemon cycle."""

    __tablename__ = "sync_runs"
    __table_args__ = {"comment": "Runs of sync/backfill with counts and per-link errors"}

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, comment="Run id")
    kind: Mapped[str] = mapped_column(Text, nullable=False, comment="sync, backfill or daemon")
    started_at: Mapped[datetime] = mapped_column(tstz(), nullable=False, comment="Start time")
    finished_at: Mapped[datetime | None] = mapped_column(
        tstz(), comment="End time; null while running"
    )
    status: Mapped[str] = mapped_column(
        Text,
        nullable=False,
        comment="running, succeeded, partial (some links failed), failed, interrupted",
    )
    links_total: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, comment="Links seen"
    )
    links_synced: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, comment="Links synced"
    )
    links_failed: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, comment="Links failed"
    )
    accounts_upserted: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, comment="Accounts inserted or changed"
    )
    snapshots_written: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, comment="balance_snapshots rows written"
    )
    transitions_written: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, comment="link_status_transitions rows written"
    )
    movements_upserted: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, comment="Movements inserted or changed"
    )
    movements_changed: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, comment="movement_changes rows written"
    )
    movements_removed: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, comment="Movements soft-deleted"
    )
    errors: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB,
        nullable=False,
        default=list,
        comment="Per-link errors: link_id, kind, message (redacted)",
    )
    error_summary: Mapped[str | None] = mapped_column(
        Text, comment="One-line summary of what failed"
    )
