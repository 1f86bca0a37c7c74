"""Alembic environment: URL from sync.config, schema `fintoc`, honours a passed connection."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

import models
from sync.config import Settings
from sync.store.db import make_engine, resolve_database_url

config = context.config
target_metadata = models.Base.metadata
SCHEMA = models.SCHEMA


def _include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Only compare our own schema: other schemas in the database are not ours."""
    if type_ == "schema":
        return name == SCHEMA
    return True


def _run(connection: Connection) -> None:
    connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table_schema=SCHEMA,
        include_schemas=True,
        include_name=_include_name,
        compare_type=True,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Use the caller's connection if given (tests, `fintoc-sync migrate`), else build one."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or resolve_database_url(Settings.from_env())
    engine = make_engine(url, pool_size=1)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run against a database")
run_migrations_online()
