"""Declarative base: the `fintoc` schema and a naming convention for constraints."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, MetaData, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SCHEMA = "fintoc"

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Every table lives in the `fintoc` schema; constraints get stable names."""

    metadata = MetaData(schema=SCHEMA, naming_convention=NAMING_CONVENTION)


def tstz() -> DateTime:
    """A timezone-aware timestamp column type (timestamptz)."""
    return DateTime(timezone=True)


class SeenMixin:
    """first_seen_at / last_seen_at, set by the loader from the sync's clock."""

    first_seen_at: Mapped[datetime] = mapped_column(
        tstz(), nullable=False, server_default=func.now(), comment="When fintoc-sync first saw it"
    )
    last_seen_at: Mapped[datetime] = mapped_column(
        tstz(),
        nullable=False,
        server_default=func.now(),
        comment="When fintoc-sync last saw it in the API",
    )
