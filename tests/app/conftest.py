"""Fixtures for the daemon: a sandbox with its tokens registered, and the daemon as a
real subprocess (`python -m sync daemon …`) whose stderr goes to a file we can poll."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models import SyncRun
from sync.sandbox import Sandbox
from sync.store import vault

REPO = Path(__file__).resolve().parents[2]


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """Poll until predicate() is truthy; its value, or a failure after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def runs(sessions: sessionmaker[Session]) -> list[SyncRun]:
    """Every sync_runs row, oldest first."""
    with sessions() as session:
        return list(session.scalars(select(SyncRun).order_by(SyncRun.id)))


@pytest.fixture
def registered(sandbox: Sandbox, sessions: sessionmaker[Session], fernet_key: str) -> list[str]:
    """The sandbox's link tokens, stored encrypted in the test database."""
    raw = sandbox.link_tokens()
    with sessions.begin() as session:
        vault.add_tokens(session, vault.make_cipher(fernet_key), raw, datetime.now(UTC))
    return raw


class DaemonProcess:
    """`python -m sync daemon` running against the test database and sandbox."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self.metrics_port = free_port()
        self._log = log_path.open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sync",
                "daemon",
                *args,
                "--metrics-port",
                str(self.metrics_port),
            ],
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log_text(self) -> str:
        """Everything the daemon has logged so far."""
        return self.log_path.read_text()

    def get(self, path: str) -> httpx.Response:
        """GET /metrics or /healthz."""
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}{path}", timeout=5)

    def terminate(self, timeout: float = 10.0) -> int:
        """SIGTERM, then the exit code (fails the test if it does not exit in time)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"the daemon did not exit within {timeout}s of SIGTERM")

    def close(self) -> None:
        """Kill it if a failing test left it running."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._log.close()


@pytest.fixture
def daemon_env(db_url: str, sandbox: Sandbox, fernet_key: str) -> dict[str, str]:
    """The environment an operator would set, pointed at the test database and sandbox."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FINTOC", "DATABASE"))}
    env.update(
        DATABASE_URL=db_url,
        FINTOC_API_URL=sandbox.url,
        FINTOC_SECRET_KEY=sandbox.secret_key,
        FINTOC_SYNC_ENCRYPTION_KEY=fernet_key,
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture
def start_daemon(
    daemon_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., DaemonProcess]]:
    """Start daemons with extra args (and env); every one is killed at teardown."""
    started: list[DaemonProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> DaemonProcess:
        log_path = tmp_path / f"daemon-{len(started)}.log"
        proc = DaemonProcess(list(args), {**daemon_env, **(env or {})}, log_path)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.close()


@pytest.fixture
def env(fresh_db_url: str, sandbox: Sandbox, fernet_key: str, tmp_path: Path) -> dict[str, str]:
    """The environment of a user pointed at the sandbox and an empty database."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("FINTOC", "DATABASE"))}
    return base | {
        "DATABASE_URL": fresh_db_url.replace("+psycopg", ""),
        "FINTOC_API_URL": sandbox.url,
        "FINTOC_SECRET_KEY": sandbox.secret_key,
        "FINTOC_SYNC_ENCRYPTION_KEY": fernet_key,
        "FINTOC_SYNC_DATA_DIR": str(tmp_path / "unused-embedded"),
        # short retries: the faults here are permanent, waiting would prove nothing
        "FINTOC_SYNC_MAX_ATTEMPTS": "2",
        "FINTOC_SYNC_BACKOFF_CAP": "0.05",
    }
