"""Run Alembic from inside the package, so `fintoc-sync migrate` works from any directory."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

import migrations
from sync.errors import ConfigError
from sync.store.db import SCHEMA


def alembic_config(engine: Engine | None = None) -> Config:
    """An Alembic Config pointing at the shipped migrations (no alembic.ini needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    if engine is not None:
        # env.py takes the URL from here when no connection is passed.
        cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return cfg


def head_revision() -> str | None:
    """The newest revision this version of fintoc-sync ships."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None if it was never migrated."""
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table_schema": SCHEMA})
        return ctx.get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to revision on one connection, in one transaction."""
    with engine.begin() as conn:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Revert migrations down to revision."""
    with engine.begin() as conn:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def require_current_schema(engine: Engine) -> None:
    """Refuse to work on a schema that is behind (or ahead of) this version's migrations."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return
    if current is None:
        raise ConfigError("the database has no fintoc schema yet; run `fintoc-sync migrate` first")
    raise ConfigError(
        f"the database schema is at revision {current} but this fintoc-sync expects {head}; "
        "run `fintoc-sync migrate`"
    )
