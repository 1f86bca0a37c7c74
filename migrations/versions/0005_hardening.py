"""The sync lock table: a lock the analyst role cannot take.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

`pg_advisory_lock` is executable by PUBLIC, so any login (an analyst's included) could
hold the old advisory sync lock and make every daemon cycle skip. `LOCK TABLE … IN
EXCLUSIVE MODE` needs UPDATE, DELETE or TRUNCATE on the table, which only the owner (the
migrating, syncing role) has; SELECT allows only ACCESS SHARE, which does not conflict.
See docs/decisions/0008-sync-lock.md.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create fintoc.sync_lock, readable and lockable by its owner only."""
    op.create_table(
        "sync_lock",
        sa.Column("name", sa.Text(), nullable=False, comment="Unused; the table is empty"),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sync_lock")),
        schema="fintoc",
        comment="Locked (EXCLUSIVE) by the running sync; only the sync role can take it",
    )
    op.execute("REVOKE ALL ON fintoc.sync_lock FROM PUBLIC")


def downgrade() -> None:
    """Drop the lock table (the code of 0002 used an advisory lock instead)."""
    op.drop_table("sync_lock", schema="fintoc")
