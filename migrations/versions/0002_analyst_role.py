"""Read-only analyst role; nothing granted to PUBLIC.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

`fintoc_analyst` is a NOLOGIN group role: grant it to real users
(`GRANT fintoc_analyst TO alice`). It may read every table and view of the
schema except `link_tokens`, and write nothing. Roles are cluster-wide, so the
role is created only if missing and never dropped by a downgrade (other
databases of the cluster may use it); the downgrade only revokes its grants here.
A migrating user without CREATEROLE gets a NOTICE instead of a failure.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLE = "fintoc_analyst"
SECRET_TABLES = ("link_tokens",)

GRANT = f"""
DO $$
DECLARE rel record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}') THEN
        BEGIN
            CREATE ROLE {ROLE} NOLOGIN;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'cannot create role {ROLE} (no CREATEROLE); skipping analyst grants';
            RETURN;
        END;
    END IF;
    EXECUTE 'GRANT USAGE ON SCHEMA fintoc TO {ROLE}';
    FOR rel IN
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'fintoc' AND c.relkind IN ('r', 'v', 'm')
          AND c.relname NOT IN ({", ".join(f"'{t}'" for t in SECRET_TABLES)})
    LOOP
        EXECUTE format('GRANT SELECT ON fintoc.%I TO {ROLE}', rel.relname);
    END LOOP;
END $$;
"""

REVOKE_PUBLIC = """
REVOKE ALL ON SCHEMA fintoc FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA fintoc FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA fintoc FROM PUBLIC;
"""

REVOKE_ROLE = f"""
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}') THEN
        EXECUTE 'REVOKE ALL ON ALL TABLES IN SCHEMA fintoc FROM {ROLE}';
        EXECUTE 'REVOKE ALL ON SCHEMA fintoc FROM {ROLE}';
    END IF;
END $$;
"""


def upgrade() -> None:
    """Create the analyst role (if allowed) and grant it read access but to secrets."""
    op.execute(REVOKE_PUBLIC)
    op.execute(GRANT)


def downgrade() -> None:
    """Revoke the analyst role's access to this schema (the role itself stays)."""
    op.execute(REVOKE_ROLE)
