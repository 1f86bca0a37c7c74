"""Movements: no foreign key from account_id to accounts (the writer guarantees it).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04

The foreign key ``movements.account_id → accounts.id`` made Postgres run one referential
check per inserted movement (a planned query and a row lock each): about 40% of the
server's CPU in a backfill, 2 CPU-seconds per 200k movements on the reference machine.
Every writer of ``fintoc.movements`` stores the account first and writes its movements in
a transaction that holds a row lock on that account (``lock_account``), so the reference
holds by construction; accounts cannot be deleted while their balance snapshots and
cursors point at them. Decision: docs/decisions/0010-load-path.md, round 4.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Drop fk_movements_account_id_accounts."""
    op.drop_constraint(
        "fk_movements_account_id_accounts", "movements", schema="fintoc", type_="foreignkey"
    )


def downgrade() -> None:
    """Put the foreign key back (validating every stored movement)."""
    op.create_foreign_key(
        "fk_movements_account_id_accounts",
        "movements",
        "accounts",
        ["account_id"],
        ["id"],
        source_schema="fintoc",
        referent_schema="fintoc",
    )
