"""The redaction gauntlet: every CLI command, at DEBUG, against a sandbox that fails.

It runs once per module (a dozen subprocesses) and hands the tests everything a user or
an operator could see: stdout, stderr, JSON log streams, the daemon's log file, and the
database afterwards. The secret key and one registered token have no recognizable shape,
so only verbatim scrubbing (not the token/key regexes) can hide them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from sync.sandbox import Sandbox
from tests.helpers import ROOT, pg_dump, run_cli

#: No sk_ prefix, no _token_: scrubbing must know these values, not guess them.
OPAQUE_KEY = "opaque-SECRET-9f8e7d6c5b4a3f2e1d0c"
WRONG_KEY = "opaque-WRONG-1a2b3c4d5e6f7a8b9c0d"
OPAQUE_TOKEN = "0paqueT0kenNoShape42xyzQQ"
FAKE_TOKEN = "link_FAKEfake1234abcd_token_NotAReal0neAtAll99"
_CLI = [sys.executable, "-m", "sync"]


@dataclass
class Gauntlet:
    """What the commands printed and stored, and the secrets that must be absent."""

    secrets: list[str]
    outputs: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)
    daemon_log: str = ""
    dump: str = ""
    stored_errors: list[str] = field(default_factory=list)

    def printed(self) -> str:
        """Every byte any command wrote to stdout or stderr, and the daemon's log file."""
        parts = [o.stdout + o.stderr for o in self.outputs.values()]
        return "\n".join([*parts, self.daemon_log])


@contextmanager
def _scratch_db(pg_server_url: str) -> Iterator[str]:
    name = f"fs_security_{uuid.uuid4().hex[:10]}"
    admin = create_engine(pg_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(pg_server_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _arm_faults(sb: Sandbox, tokens: list[str]) -> None:
    """Each of the first links fails its own way; movements of one link fail too."""
    per_link: list[tuple[str, dict[str, Any]]] = [
        ("status_502", {}),
        ("status_429", {"retry_after": "0"}),
        ("reset", {}),
        ("timeout", {"seconds": 2.0}),
        ("malformed_json", {}),
        ("bad_payload", {"mutate": "wrong_type:id"}),
    ]
    for token, (kind, params) in zip(tokens, per_link, strict=False):
        sb.faults.add(kind, path="^/v1/links/" + token + "$", times=None, **params)
    sb.faults.add("status_500", path="/movements", match_query=tokens[6], times=None)
    sb.faults.add("status_503", path="/v1/accounts", match_query=tokens[7], times=None)


def _daemon(env: dict[str, str], log_path: Path, db_url: str) -> str:
    """Start the daemon at DEBUG/JSON, wait for its first cycle to end, SIGTERM it."""
    engine = create_engine(db_url)
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [*_CLI, "daemon", "--every", "1h", "--log-level", "DEBUG", "--log-format", "json"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            query = text(
                "SELECT count(*) FROM fintoc.sync_runs"
                " WHERE kind = 'daemon' AND finished_at IS NOT NULL"
            )
            while time.monotonic() < deadline:
                with engine.connect() as conn:
                    if conn.scalar(query):
                        break
                time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
            engine.dispose()
    return log_path.read_text()


@pytest.fixture(scope="module")
def gauntlet(pg_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gauntlet]:
    """Run every command against a failing sandbox; collect what they showed and stored."""
    tmp = tmp_path_factory.mktemp("security")
    key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with Sandbox(seed=42, secret_key=OPAQUE_KEY) as sb:
        tokens = sb.link_tokens()
        all_tokens = [*tokens, OPAQUE_TOKEN, FAKE_TOKEN]
        tails = [t.split("_token_")[-1] for t in all_tokens if "_token_" in t]
        found = Gauntlet(secrets=[OPAQUE_KEY, WRONG_KEY, key, new_key, *all_tokens, *tails])
        with _scratch_db(pg_server_url) as db_url:
            base = {k: v for k, v in os.environ.items() if not k.startswith(("FINTOC", "DATABASE"))}
            env = base | {
                "DATABASE_URL": db_url.replace("+psycopg", ""),
                "FINTOC_API_URL": sb.url,
                "FINTOC_SECRET_KEY": OPAQUE_KEY,
                "FINTOC_SYNC_ENCRYPTION_KEY": key,
                "FINTOC_SYNC_DATA_DIR": str(tmp / "unused-embedded"),
                "FINTOC_SYNC_MAX_ATTEMPTS": "2",
                "FINTOC_SYNC_BACKOFF_CAP": "0.05",
                "FINTOC_SYNC_HTTP_TIMEOUT": "1",
            }
            debug = ("--log-level", "DEBUG")
            token_file = tmp / "tokens.txt"
            token_file.write_text("\n".join(all_tokens) + "\n")
            _arm_faults(sb, tokens)
            out = found.outputs
            out["migrate"] = run_cli("migrate", *debug, env=env)
            out["links add file"] = run_cli(
                "links",
                "add",
                "--from-file",
                str(token_file),
                *debug,
                "--log-format",
                "json",
                env=env,
            )
            out["links add argv"] = run_cli(
                "links", "add", OPAQUE_TOKEN, tokens[0], *debug, env=env
            )
            out["links add stdin"] = run_cli(
                "links", "add", "--from-file", "-", *debug, stdin=token_file.read_text(), env=env
            )
            out["sync text"] = run_cli("sync", *debug, env=env)
            out["sync json"] = run_cli("sync", *debug, "--log-format", "json", env=env)
            out["sync wrong key"] = run_cli(
                "sync", *debug, env=env | {"FINTOC_SECRET_KEY": WRONG_KEY}
            )
            out["backfill"] = run_cli(
                "backfill", "--since", "2026-08-01", "--until", "2026-10-01", *debug, env=env
            )
            out["backfill wrong key"] = run_cli(
                "backfill",
                "--since",
                "2026-09-01",
                "--until",
                "2026-10-01",
                *debug,
                env=env | {"FINTOC_SECRET_KEY": WRONG_KEY},
            )
            out["links list"] = run_cli("links", "list", *debug, env=env)
            out["rotate-key"] = run_cli(
                "links", "rotate-key", *debug, env=env | {"FINTOC_SYNC_NEW_ENCRYPTION_KEY": new_key}
            )
            env["FINTOC_SYNC_ENCRYPTION_KEY"] = new_key
            out["sync old key"] = run_cli(
                "sync", *debug, env=env | {"FINTOC_SYNC_ENCRYPTION_KEY": key}
            )
            found.daemon_log = _daemon(env, tmp / "daemon.log", db_url)
            found.dump = pg_dump(db_url)
            engine = create_engine(db_url)
            with engine.connect() as conn:
                found.stored_errors = [
                    str(v)
                    for v in conn.scalars(
                        text(
                            "SELECT errors::text FROM fintoc.sync_runs UNION ALL "
                            "SELECT error_summary FROM fintoc.sync_runs UNION ALL "
                            "SELECT last_sync_error FROM fintoc.links"
                        )
                    )
                    if v is not None
                ]
            engine.dispose()
            yield found
