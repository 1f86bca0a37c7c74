"""Webhook events inbox.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30

One row per Fintoc event id (the durable inbox of POST /webhooks/fintoc). The payload
never holds a link_token, so the analyst role may read it: SELECT is granted on this
table only (no other privilege is added).

Note for the integrator: written on a branch whose head was 0002; re-chain
``down_revision`` to the head at merge time.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GRANT = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fintoc_analyst') THEN
        EXECUTE 'GRANT SELECT ON fintoc.webhook_events TO fintoc_analyst';
    END IF;
END $$;
"""


def upgrade() -> None:
    """Create fintoc.webhook_events and let analysts read it."""
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.Text(), nullable=False, comment="Fintoc event id (evt_…)"),
        sa.Column(
            "type", sa.Text(), nullable=False, comment="Event type, e.g. link.created (free text)"
        ),
        sa.Column("mode", sa.Text(), nullable=True, comment="test or live"),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="When Fintoc created the event",
        ),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="When fintoc-sync first stored it (first delivery)",
        ),
        sa.Column(
            "processed_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="When it was applied, ignored or given up on",
        ),
        sa.Column(
            "status", sa.Text(), nullable=False, comment="received, processed, ignored or failed"
        ),
        sa.Column(
            "attempts",
            sa.Integer(),
            server_default="0",
            nullable=False,
            comment="Processing attempts so far",
        ),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="Earliest time the worker tries it (again)",
        ),
        sa.Column(
            "error",
            sa.Text(),
            nullable=True,
            comment="The last processing error (redacted), null after a success",
        ),
        sa.Column(
            "subject",
            sa.Text(),
            nullable=True,
            comment="What the event is about: the link or account id it syncs",
        ),
        sa.Column(
            "deliveries",
            sa.Integer(),
            server_default="1",
            nullable=False,
            comment="How often Fintoc delivered it",
        ),
        sa.Column(
            "payload",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            comment="The event as delivered, every link_token removed",
        ),
        sa.CheckConstraint(
            "status IN ('received', 'processed', 'ignored', 'failed')",
            name=op.f("ck_webhook_events_status_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_events")),
        schema="fintoc",
        comment="Fintoc webhook events, one row per event id; payloads never hold a link_token (it goes to link_tokens, encrypted)",
    )
    op.create_index(
        op.f("ix_webhook_events_next_attempt_at"),
        "webhook_events",
        ["next_attempt_at"],
        unique=False,
        schema="fintoc",
        postgresql_where=sa.text("status = 'received'"),
    )
    op.create_index(
        op.f("ix_webhook_events_subject"),
        "webhook_events",
        ["subject"],
        unique=False,
        schema="fintoc",
    )
    op.execute(GRANT)


def downgrade() -> None:
    """Drop the inbox (its grant goes with it)."""
    op.drop_index(op.f("ix_webhook_events_subject"), table_name="webhook_events", schema="fintoc")
    op.drop_index(
        op.f("ix_webhook_events_next_attempt_at"), table_name="webhook_events", schema="fintoc"
    )
    op.drop_table("webhook_events", schema="fintoc")
