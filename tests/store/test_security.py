"""The analyst role reads everything but secrets and writes nothing; PUBLIC gets nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import ProgrammingError


@pytest.fixture
def analyst(engine: Engine) -> Iterator[Connection]:
    """A connection acting as a login user who was granted fintoc_analyst."""
    user = f"alice_{uuid.uuid4().hex[:8]}"
    with engine.connect() as admin:
        admin.execute(text(f"CREATE ROLE {user} LOGIN"))
        admin.execute(text(f"GRANT fintoc_analyst TO {user}"))
        admin.commit()
    conn = engine.connect()
    conn.info["role"] = user
    yield conn
    conn.rollback()
    conn.close()
    with engine.connect() as admin:
        admin.execute(text(f"DROP ROLE {user}"))
        admin.commit()


def _try(conn: Connection, sql: str) -> str:
    """'ok' or the SQLSTATE class of the error (the transaction is rolled back after)."""
    try:
        # SET ROLE is transactional: set it in the same transaction as the statement.
        conn.execute(text(f"SET ROLE {conn.info['role']}"))
        conn.execute(text(sql))
        return "ok"
    except ProgrammingError as exc:
        return str(getattr(exc.orig, "sqlstate", "?"))
    finally:
        conn.rollback()


@pytest.mark.parametrize(
    "table",
    [
        "links",
        "accounts",
        "balance_snapshots",
        "link_status_transitions",
        "movements",
        "sync_runs",
        "institutions",
        "account_balances",
        "link_status_history",
        "daily_balances",
        "monthly_cash_flow",
        "link_health",
        "data_freshness",
    ],
)
def test_analyst_reads_every_data_table(analyst: Connection, table: str) -> None:
    """SELECT works on each analyst table and view."""
    assert _try(analyst, f"SELECT * FROM fintoc.{table} LIMIT 1") == "ok"


def test_analyst_cannot_read_tokens_or_write(analyst: Connection) -> None:
    """The token table is denied (42501) and so are writes to data tables."""
    assert _try(analyst, "SELECT * FROM fintoc.link_tokens") == "42501"
    assert _try(analyst, "INSERT INTO fintoc.institutions (id) VALUES ('x')") == "42501"
    assert _try(analyst, "UPDATE fintoc.links SET status = 'x'") == "42501"
    assert _try(analyst, "DELETE FROM fintoc.movements") == "42501"


def test_public_has_no_privileges_on_the_schema(engine: Engine) -> None:
    """No table of the schema is granted to PUBLIC."""
    with engine.connect() as conn:
        grants = conn.execute(
            text(
                "SELECT table_name, privilege_type FROM information_schema.role_table_grants "
                "WHERE table_schema = 'fintoc' AND grantee = 'PUBLIC'"
            )
        ).all()
        schema_acl = conn.scalar(
            text("SELECT nspacl::text FROM pg_namespace WHERE nspname='fintoc'")
        )
    assert grants == []
    entries = (schema_acl or "{}").strip("{}").split(",")
    assert not [e for e in entries if e.startswith("=")]  # "=U/owner" is PUBLIC's entry
