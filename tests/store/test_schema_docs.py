"""docs/schema.md is generated from the schema's COMMENTs and kept current."""

from __future__ import annotations

import os
import subprocess
import sys

from sync.store import schema_docs
from sync.store.schema_docs import Column, Function, Relation
from tests.helpers import ROOT

SCHEMA_MD = ROOT / "docs" / "schema.md"


def _generate(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "sync.store.schema_docs", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_committed_schema_md_is_what_a_fresh_database_generates(fresh_db_url: str) -> None:
    """A freshly migrated database renders exactly the committed docs/schema.md."""
    from sync.store.db import make_engine
    from sync.store.migrate import upgrade

    engine = make_engine(fresh_db_url, pool_size=1)
    upgrade(engine)
    engine.dispose()
    result = _generate(fresh_db_url)
    assert result.returncode == 0, result.stderr
    assert result.stdout == SCHEMA_MD.read_text(encoding="utf-8"), (
        "docs/schema.md is stale: run `python -m sync.store.schema_docs --write`"
    )


def test_generated_docs_cover_every_view_and_column(fresh_db_url: str) -> None:
    """Each analyst view and its money columns appear with their comments."""
    text = SCHEMA_MD.read_text(encoding="utf-8")
    for view in ("daily_balances", "monthly_cash_flow", "link_health", "data_freshness"):
        assert f"### `{view}`" in text
    assert "| `balance_current_major` | numeric |" in text
    assert "`fintoc.to_major(amount numeric, currency text)`" in text


def test_render_escapes_pipes_and_marks_keys() -> None:
    """A pipe in a comment cannot break the table; key and nullability are shown for tables."""
    rel = Relation(
        "t",
        "r",
        "a | b",
        (Column("id", "text", True, True, "x|y"), Column("n", "int", False, False, None)),
    )
    fn = Function("f", "a int", "int", "does f")
    out = schema_docs.render([rel], [fn])
    assert "a \\| b" in out and "| `id` | text | key | x\\|y |" in out
    assert "| `n` | int | null |  |" in out
    assert "| `fintoc.f(a int)` | int | does f |" in out


def test_without_a_database_url_it_exits_2() -> None:
    """No DATABASE_URL and no --database-url: a one-line reason and exit 2."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "sync.store.schema_docs"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert "DATABASE_URL" in result.stderr
