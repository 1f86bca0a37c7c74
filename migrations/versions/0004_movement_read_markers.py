"""Movement read markers: skip re-reading accounts Fintoc has not refreshed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

`movement_cursors.source_refreshed_at` keeps the account's `refreshed_at` as it was
when its movements were last read completely, and `read_at` when that was. A sync
skips the movement read of an account whose `refreshed_at` has not moved since, unless
the last complete read is older than FINTOC_SYNC_FULL_READ_EVERY (the safety net).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the two marker columns."""
    op.add_column(
        "movement_cursors",
        sa.Column(
            "source_refreshed_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="The account's refreshed_at (from Fintoc) when its movements were last read "
            "completely; while it has not moved, a sync need not read them again",
        ),
        schema="fintoc",
    )
    op.add_column(
        "movement_cursors",
        sa.Column(
            "read_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="When the movements were last read completely (sync or backfill)",
        ),
        schema="fintoc",
    )


def downgrade() -> None:
    """Drop them."""
    op.drop_column("movement_cursors", "read_at", schema="fintoc")
    op.drop_column("movement_cursors", "source_refreshed_at", schema="fintoc")
