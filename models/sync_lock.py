"""The table whose lock serializes sync runs (docs/decisions/0008-sync-lock.md)."""

from __future__ import annotations

from sqlalchemy import Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base


class SyncLock(Base):
    """Never holds rows: a sync run holds ``LOCK TABLE … IN EXCLUSIVE MODE`` on it."""

    __tablename__ = "sync_lock"
    __table_args__ = {
        "comment": "Locked (EXCLUSIVE) by the running sync; only the sync role can take it"
    }

    name: Mapped[str] = mapped_column(Text, primary_key=True, comment="Unused; the table is empty")
