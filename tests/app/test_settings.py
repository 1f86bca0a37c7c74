"""Settings from the environment: defaults, validation, and what they wire into."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sync.app.wiring import Wiring
from sync.config import Settings, default_data_dir
from sync.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_follow_the_contract() -> None:
    """Unset variables give the documented defaults (API URL, pinned version, data dir)."""
    s = Settings.from_env({"HOME": "/home/ana"})
    assert s.api_url == "https://api.fintoc.com"
    assert s.api_version == "2023-11-15"
    assert s.database_url is None
    assert s.data_dir == Path("/home/ana/.local/share/fintoc-sync/pgdata")
    assert default_data_dir({"XDG_DATA_HOME": "/x"}) == Path("/x/fintoc-sync/pgdata")


def test_retry_settings_reach_the_client() -> None:
    """FINTOC_SYNC_MAX_ATTEMPTS, _BACKOFF_CAP and _RETRY_AFTER_CAP shape the retry policy."""
    env = {
        "FINTOC_SECRET_KEY": "sk_test_settings",
        "FINTOC_API_URL": "http://127.0.0.1:9",
        "FINTOC_SYNC_MAX_ATTEMPTS": "3",
        "FINTOC_SYNC_BACKOFF_CAP": "2",
        "FINTOC_SYNC_RETRY_AFTER_CAP": "5",
    }
    with Wiring(Settings.from_env(env)).client() as client:
        assert (client.retry.max_attempts, client.retry.cap) == (3, 2.0)
        assert client.retry.retry_after_cap == 5.0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FINTOC_SYNC_CONCURRENCY", "0"),
        ("FINTOC_SYNC_CONCURRENCY", "2.5"),
        ("FINTOC_SYNC_REQUESTS_PER_SECOND", "-1"),
        ("FINTOC_SYNC_HTTP_TIMEOUT", "soon"),
    ],
)
def test_bad_numbers_are_configuration_errors(name: str, value: str) -> None:
    """A nonsensical number names the variable and the value."""
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_daemon_waits_for_an_unreachable_database_then_says_why(tmp_path: Path) -> None:
    """With the database down at start, the daemon retries for FINTOC_SYNC_DB_WAIT, then exits 2."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FINTOC", "DATABASE"))}
    env |= {
        "DATABASE_URL": f"postgresql://nobody@/nodb?host={tmp_path}",  # no server there
        "FINTOC_SECRET_KEY": "sk_test_settings",
        "FINTOC_API_URL": "http://127.0.0.1:9",
        "FINTOC_SYNC_DB_WAIT": "2.5",
    }
    result = subprocess.run(
        [sys.executable, "-m", "sync", "daemon"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2  # an unreachable database is configuration
    assert result.stderr.count("database not reachable yet") >= 1
    assert "fintoc-sync: cannot reach the database" in result.stderr
