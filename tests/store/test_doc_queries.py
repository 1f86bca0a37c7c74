"""Every ```sql block of README.md and docs/*.md runs against synced sandbox data, as the
analyst role, and returns rows: a documented query cannot silently go stale."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from sync.sandbox import Sandbox
from tests.synced import sync_daily

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```sql\n(.*?)^```", re.S | re.M)
# Role administration (CREATE ROLE alice …; GRANT fintoc_analyst TO alice) is for a DBA to
# copy: it needs CREATEROLE and changes the cluster, not the data, and returns no rows.
# Such statements are listed, not run; nothing else is skipped.
ROLE_ADMIN = re.compile(r"^\s*((CREATE|ALTER|DROP)\s+ROLE|GRANT|REVOKE)\b", re.I)


def statements() -> list[tuple[str, str]]:
    """(where, statement) for every statement of every ```sql block, in file order."""
    found = []
    for path in DOCS:
        source = path.read_text(encoding="utf-8")
        for block in BLOCK.finditer(source):
            line = source.count("\n", 0, block.start()) + 1
            for sql in re.split(r";[ \t]*(?:--[^\n]*)?$", block.group(1), flags=re.M):
                code = "\n".join(x for x in sql.splitlines() if not x.strip().startswith("--"))
                if code.strip():
                    found.append((f"{path.relative_to(ROOT)}:{line}", sql.strip()))
    return found


def test_the_extractor_finds_the_documented_queries() -> None:
    """The README and docs/analyst.md hold SQL blocks (an empty list would prove nothing)."""
    found = statements()
    places = {where.split(":")[0] for where, _ in found}
    assert {"README.md", "docs/analyst.md"} <= places
    assert sum(where.startswith("docs/analyst.md") for where, _ in found) >= 10
    skipped = [sql for _, sql in found if ROLE_ADMIN.match(sql)]
    assert len(skipped) == 2  # the README's CREATE ROLE alice / GRANT fintoc_analyst TO alice


def test_every_documented_query_returns_rows_on_synced_sandbox_data(
    engine: Engine, sessions: sessionmaker[Session], sandbox: Sandbox, fernet_key: str
) -> None:
    """Each statement runs as fintoc_analyst (where that role exists) and returns a row."""
    assert sync_daily(sandbox, sessions, fernet_key, days=2) == ["succeeded"] * 3
    with engine.connect() as conn:
        analyst = conn.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = 'fintoc_analyst'"))
    problems = []
    for where, sql in statements():
        if ROLE_ADMIN.match(sql):
            continue
        with engine.connect() as conn, conn.begin() as tx:
            if analyst:
                conn.execute(text("SET LOCAL ROLE fintoc_analyst"))
            try:
                rows = conn.exec_driver_sql(sql).fetchmany(1)
            except Exception as exc:  # every failure is reported, with where it is written
                problems.append(f"{where}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
                continue
            finally:
                tx.rollback()
            if not rows:
                problems.append(f"{where}: no rows:\n{sql}")
    assert problems == []
