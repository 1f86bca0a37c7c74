"""Run Alembic from inside the package, so `fintoc-sync migrate` works from any directory."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text

import migrations
from sync.errors import ConfigError

if TYPE_CHECKING:
    from alembic.config import Config

#: The newest revision this version ships. Every command checks the database against it
#: before it works; reading it from here (not alembic's script directory) keeps alembic
#: out of every command but ``migrate`` (~0.3 s of start-up). A test checks that it is the
#: migrations' head.
HEAD_REVISION = "0007"


def alembic_config(engine: Engine | None = None) -> Config:
    """An Alembic Config pointing at the shipped migrations (no alembic.ini needed)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    if engine is not None:
        # env.py takes the URL from here when no connection is passed.
        cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return cfg


def head_revision() -> str | None:
    """The newest revision this version of fintoc-sync ships (read from the migrations)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None if it was never migrated."""
    with engine.connect() as conn:
        if conn.scalar(text("SELECT to_regclass('fintoc.alembic_version')")) is None:
            return None
        rows = conn.execute(text("SELECT version_num FROM fintoc.alembic_version")).all()
    return rows[0][0] if len(rows) == 1 else None


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to revision on one connection, in one transaction."""
    from alembic import command

    with engine.begin() as conn:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Revert migrations down to revision."""
    from alembic import command

    with engine.begin() as conn:
        cfg = alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def require_current_schema(engine: Engine) -> None:
    """Refuse to work on a schema that is behind (or ahead of) this version's migrations."""
    current, head = current_revision(engine), HEAD_REVISION
    if current == head:
        return
    if current is None:
        raise ConfigError("the database has no fintoc schema yet; run `fintoc-sync migrate` first")
    raise ConfigError(
        f"the database schema is at revision {current} but this fintoc-sync expects {head}; "
        "run `fintoc-sync migrate`"
    )
