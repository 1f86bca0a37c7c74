"""Models declare the schema, Alembic owns it: they agree, and both directions run."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text

import models
from sync.errors import ConfigError
from sync.store.db import SCHEMA, make_engine
from sync.store.migrate import (
    alembic_config,
    current_revision,
    head_revision,
    require_current_schema,
)


def _diff(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn,
            opts={
                "include_schemas": True,
                "include_name": lambda name, type_, _p: type_ != "schema" or name == SCHEMA,
                "version_table_schema": SCHEMA,
                "compare_type": True,
            },
        )
        return list(compare_metadata(ctx, models.Base.metadata))


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    """`alembic check`: no difference between the models and the migrated database."""
    assert _diff(engine) == []


def test_downgrade_to_base_and_upgrade_again(fresh_db_url: str) -> None:
    """Every migration can be reverted and re-applied; the result still matches the models."""
    engine = make_engine(fresh_db_url, pool_size=1)
    from sync.store.migrate import downgrade, upgrade

    upgrade(engine)
    assert current_revision(engine) == head_revision()
    downgrade(engine, "base")
    with engine.connect() as conn:
        tables = conn.scalar(
            text(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'fintoc' "
                "AND table_name <> 'alembic_version'"
            )
        )
    assert tables == 0
    upgrade(engine)
    assert _diff(engine) == []
    engine.dispose()


def test_commands_refuse_a_schema_that_is_behind(fresh_db_url: str) -> None:
    """require_current_schema names the fix when the database is not at head."""
    engine = make_engine(fresh_db_url, pool_size=1)
    try:
        require_current_schema(engine)
    except ConfigError as exc:
        assert "fintoc-sync migrate" in str(exc)
    else:
        raise AssertionError("an empty database was accepted")
    engine.dispose()


def test_every_table_view_and_column_has_a_comment(engine: Engine) -> None:
    """Analysts read COMMENT ON for every table, view and column of the schema."""
    with engine.connect() as conn:
        missing = (
            conn.execute(
                text(
                    """
                SELECT c.table_name || '.' || c.column_name
                FROM information_schema.columns c
                JOIN pg_catalog.pg_class k ON k.relname = c.table_name
                JOIN pg_catalog.pg_namespace n ON n.oid = k.relnamespace AND n.nspname = 'fintoc'
                WHERE c.table_schema = 'fintoc' AND c.table_name <> 'alembic_version'
                  AND k.relkind IN ('r', 'v')
                  AND col_description(k.oid, c.ordinal_position) IS NULL
                """
                )
            )
            .scalars()
            .all()
        )
        bare = conn.execute(
            text(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'fintoc' AND c.relkind IN ('r', 'v') "
                "AND c.relname <> 'alembic_version' AND obj_description(c.oid, 'pg_class') IS NULL"
            )
        ).all()
    assert missing == []
    assert bare == []


def test_alembic_config_points_at_the_shipped_migrations() -> None:
    """The packaged Alembic config finds the migrations without alembic.ini."""
    cfg = alembic_config()
    assert head_revision() is not None
    command.history(cfg)  # raises if the script directory is wrong


def test_the_head_every_command_checks_is_the_migrations_head() -> None:
    """HEAD_REVISION (read without alembic at start-up) must be the newest migration."""
    from sync.store.migrate import HEAD_REVISION

    assert head_revision() == HEAD_REVISION


def test_commands_do_not_import_alembic() -> None:
    """Only `migrate` needs alembic: the other commands start faster without it."""
    import subprocess
    import sys

    code = "import sys, sync.app.cli, sync.store.migrate; print('alembic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
