"""The operator's traps (issue: no traps, honest exit codes): each test runs the real CLI
against the sandbox and a real Postgres, as a user would."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text

from sync.sandbox import Sandbox
from sync.store import vault
from tests.helpers import run_cli


def _engine(env: dict[str, str]):  # type: ignore[no-untyped-def]
    return create_engine(env["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://"))


def _scalar(env: dict[str, str], sql: str) -> object:
    engine = _engine(env)
    with engine.connect() as conn:
        value = conn.scalar(text(sql))
    engine.dispose()
    return value


@pytest.fixture
def migrated(env: dict[str, str]) -> dict[str, str]:
    """The user's environment on a migrated, empty database."""
    assert run_cli("migrate", env=env).returncode == 0
    return env


@pytest.fixture
def registered(migrated: dict[str, str], sandbox: Sandbox) -> dict[str, str]:
    """The environment with the sandbox's tokens registered under its key."""
    assert run_cli("links", "add", *sandbox.link_tokens(), env=migrated).returncode == 0
    return migrated


# ------------------------------------------------------------------ the vault key


def test_links_add_refuses_a_key_that_cannot_decrypt_the_stored_tokens(
    registered: dict[str, str], sandbox: Sandbox
) -> None:
    """`links add` under another key exits 2, names the count and key, and stores nothing."""
    other = Fernet.generate_key().decode()
    result = run_cli(
        "links", "add", "link_abcdefgh_token_ijklmnop",
        env=registered | {"FINTOC_SYNC_ENCRYPTION_KEY": other},
    )  # fmt: skip
    assert result.returncode == 2
    n = len(sandbox.link_tokens())
    assert f"cannot decrypt the {n} stored link token(s)" in result.stderr
    assert vault.key_fingerprint(other) in result.stderr
    assert _scalar(registered, "SELECT count(*) FROM fintoc.link_tokens") == n


def test_one_undecryptable_token_fails_alone_and_the_others_sync(
    registered: dict[str, str], sandbox: Sandbox
) -> None:
    """A token stored under another key is that token's failure (exit 1); the rest sync."""
    engine = _engine(registered)
    with engine.begin() as conn:
        from sqlalchemy.orm import Session

        with Session(bind=conn) as session:
            vault.add_tokens(
                session, Fernet(Fernet.generate_key()), ["link_x1_token_y1"], datetime.now(UTC)
            )
            session.flush()
    engine.dispose()
    result = run_cli("sync", "--json", env=registered)
    assert result.returncode == 1, result.stderr
    doc = json.loads(result.stdout)
    assert doc["links_synced"] == len(sandbox.link_tokens())
    assert [f["kind"] for f in doc["failures"]] == ["UndecryptableToken"]
    assert doc["failures"][0]["token_ref"] == vault.fingerprint("link_x1_token_y1")[:12]


def test_sync_with_a_key_that_decrypts_nothing_exits_2_and_closes_its_run(
    registered: dict[str, str],
) -> None:
    """The wrong vault key is configuration (exit 2, key named) and the run row is closed."""
    other = Fernet.generate_key().decode()
    result = run_cli("sync", env=registered | {"FINTOC_SYNC_ENCRYPTION_KEY": other})
    assert result.returncode == 2
    assert "not the key they were stored with" in result.stderr
    assert vault.key_fingerprint(other) in result.stderr
    assert _scalar(registered, "SELECT status FROM fintoc.sync_runs ORDER BY id DESC") == "failed"


def test_sync_without_an_encryption_key_while_tokens_are_stored_exits_2(
    registered: dict[str, str],
) -> None:
    """No FINTOC_SYNC_ENCRYPTION_KEY with tokens stored is a configuration error, not a gap."""
    result = run_cli("sync", env=registered | {"FINTOC_SYNC_ENCRYPTION_KEY": ""})
    assert result.returncode == 2
    assert "link token(s) are stored" in result.stderr


# ------------------------------------------------------------------ token shapes


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("sk_test_sandbox_4f1c2e9a7b3d5f6e8a0c", "API key"),
        ("pk_live_abcdefghijkl", "API key"),
        ("link_abc token_def", "whitespace"),
        ("xyz", "characters long"),
        ("link_" + "a" * 600, "characters long"),
    ],
)
def test_links_add_refuses_what_cannot_be_a_token(
    migrated: dict[str, str], token: str, reason: str
) -> None:
    """API keys, whitespace and absurd lengths exit 2, store nothing and are not echoed."""
    result = run_cli("links", "add", "link_good1234_token_abcdefgh", token, env=migrated)
    assert result.returncode == 2
    assert reason in result.stderr and "token #2" in result.stderr
    assert token not in result.stderr + result.stdout
    assert _scalar(migrated, "SELECT count(*) FROM fintoc.link_tokens") == 0


def test_links_add_registers_an_unfamiliar_shape_with_a_warning(migrated: dict[str, str]) -> None:
    """A token not shaped link_…_token_… is registered (Fintoc says: don't parse) with a warning."""
    result = run_cli("links", "add", "6n12zLmai3lLE9DqXyZ", env=migrated)
    assert result.returncode == 0
    assert "do not look like link_…_token_…" in result.stderr
    assert "registered 1 new" in result.stdout


def test_links_add_verify_names_each_link_and_skips_tokens_the_api_refuses(
    migrated: dict[str, str], sandbox: Sandbox
) -> None:
    """--verify prints the link each token opens; an unknown token is not registered (exit 1)."""
    good = sandbox.link_tokens()[0]
    result = run_cli("links", "add", "--verify", good, "link_nope1234_token_nope5678", env=migrated)
    assert result.returncode == 1
    link_id = good.split("_token_")[0]
    assert f"link {link_id}" in result.stdout
    assert "refused by the API" in result.stdout and "404" in result.stdout
    assert _scalar(migrated, "SELECT count(*) FROM fintoc.link_tokens") == 1


def test_links_remove_forgets_tokens_by_id_or_token_and_keeps_the_data(
    registered: dict[str, str], sandbox: Sandbox
) -> None:
    """`links remove ID TOKEN` deletes those tokens only; links and accounts stay; unknown → 1."""
    assert run_cli("sync", env=registered).returncode == 0
    first, second = sandbox.link_tokens()[:2]
    first_id = first.split("_token_")[0]
    result = run_cli("links", "remove", first_id, second, env=registered)
    assert result.returncode == 0, result.stdout + result.stderr
    assert second not in result.stdout
    left = _scalar(registered, "SELECT count(*) FROM fintoc.link_tokens")
    assert left == len(sandbox.link_tokens()) - 2
    assert _scalar(registered, f"SELECT count(*) FROM fintoc.accounts WHERE link_id = '{first_id}'")
    again = run_cli("links", "remove", first_id, env=registered)
    assert again.returncode == 1 and "no registered token matches" in again.stdout


# ------------------------------------------------------------------ exit codes


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/db"}, "cannot reach the database"),
        ({"DATABASE_URL": "postgresql://h:notaport/db"}, "DATABASE_URL is not a valid URL"),
    ],
)
def test_database_configuration_errors_exit_2_in_one_line(
    env: dict[str, str], change: dict[str, str], message: str
) -> None:
    """An unreachable database or an unparsable URL: exit 2, one line, no traceback."""
    result = run_cli("sync", env=env | change)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_daemon_metrics_port_out_of_range_is_a_usage_error(env: dict[str, str]) -> None:
    """`daemon --metrics-port 99999` exits 2 with argparse's one line, not a traceback."""
    result = run_cli("daemon", "--metrics-port", "99999", env=env)
    assert result.returncode == 2
    assert "port from 0 to 65535" in result.stderr and "Traceback" not in result.stderr


def test_sync_of_an_unknown_link_fails_with_no_such_link(registered: dict[str, str]) -> None:
    """`sync --link link_nope` exits 1 saying there is no such link, not "succeeded"."""
    result = run_cli("sync", "--link", "link_nope", env=registered)
    assert result.returncode == 1
    assert "no such link" in result.stdout
    assert "succeeded" not in result.stdout


def test_sync_stops_when_the_link_list_cannot_be_read(
    registered: dict[str, str], sandbox: Sandbox
) -> None:
    """With the list down after retries, no token is tried: the run fails once, quickly."""
    sandbox.faults.add("status_500", path=r"^/v1/links$", times=None)
    result = run_cli("sync", "--json", env=registered)
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    assert doc["status"] == "failed" and doc["links_synced"] == 0
    assert [f["subject"] for f in doc["failures"]] == ["the link list"]


# ------------------------------------------------------------------ what is shown


def test_links_list_shows_deleted_links_as_deleted_and_times_in_utc(
    registered: dict[str, str], sandbox: Sandbox
) -> None:
    """A link gone from the API reads `deleted` in the table and in --json; LAST SYNC says UTC."""
    assert run_cli("sync", env=registered).returncode == 0
    gone = sandbox.world.list_links()[0]
    sandbox.world.delete(gone)
    run_cli("sync", env=registered)
    table = run_cli("links", "list", env=registered).stdout
    assert "LAST SYNC (UTC)" in table
    row = next(line for line in table.splitlines() if line.startswith(gone.id))
    assert " deleted " in row and " active " not in row
    docs = json.loads(run_cli("links", "list", "--json", env=registered).stdout)
    doc = next(d for d in docs if d["id"] == gone.id)
    assert doc["status"] == "deleted" and doc["deleted_at"]
    assert doc["last_synced_at"].endswith("+00:00")


def test_balance_current_major_has_the_currency_decimals(registered: dict[str, str]) -> None:
    """account_balances.balance_current_major: 0 decimals for CLP, 2 for other currencies."""
    assert run_cli("sync", env=registered).returncode == 0
    engine = _engine(registered)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT currency, scale(balance_current_major) FROM fintoc.account_balances")
        ).all()
    engine.dispose()
    assert rows and all(s == (0 if c == "CLP" else 2) for c, s in rows)
    assert {c for c, _ in rows} - {"CLP"}, "the sandbox should have a non-CLP account"


def test_readme_login_required_query_skips_first_observations(db_url: str) -> None:
    """The README's "went login_required in the last 7 days" query counts changes only."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("Links that went `login_required`") :]
    sql = re.search(r"```sql\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]
    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO fintoc.links (id, status) VALUES ('l1', 'login_required')"))
        conn.execute(text("INSERT INTO fintoc.links (id, status) VALUES ('l2', 'login_required')"))
        conn.execute(
            text(
                "INSERT INTO fintoc.link_status_transitions (link_id, from_status, to_status, "
                "observed_at) VALUES ('l1', NULL, 'login_required', now()), "
                "('l2', 'active', 'login_required', now())"
            )
        )
        found = [r.link_id for r in conn.execute(text(sql))]
    engine.dispose()
    assert found == ["l2"]


def test_sync_json_is_one_object_with_counts(registered: dict[str, str], sandbox: Sandbox) -> None:
    """`sync --json` prints the summary as one JSON document with the exit code in it."""
    result = run_cli("sync", "--json", env=registered)
    doc = json.loads(result.stdout)
    assert doc["status"] == "succeeded" and doc["exit_code"] == 0 == result.returncode
    assert doc["links_synced"] == len(sandbox.link_tokens())
    assert doc["counts"]["accounts_upserted"] > 0


def test_daemon_logs_its_own_outcome_not_apschedulers_success(
    migrated: dict[str, str], sandbox: Sandbox, tmp_path: object
) -> None:
    """After a failed cycle the daemon says so; APScheduler's "executed successfully" is gone."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.helpers import ROOT

    log = Path(str(tmp_path)) / "daemon.log"
    env = migrated | {"FINTOC_SECRET_KEY": "sk_test_not_the_right_one", "PYTHONUNBUFFERED": "1"}
    with log.open("w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sync", "daemon", "--every", "1h"],
            cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while "cycle finished" not in log.read_text() and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(15)
    text_ = log.read_text()
    assert "cycle finished: failed" in text_
    assert "executed successfully" not in text_


def test_sync_progress_is_live_only_on_a_terminal() -> None:
    """SyncProgress draws a line on a TTY and writes nothing to a pipe."""
    import io

    from sync.app.progress import SyncProgress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        progress = SyncProgress(2, stream=stream, clock=lambda: 0.0)
        hook = progress.wrap(lambda *args: None)
        hook(None, "t1", type("A", (), {"link_id": "link_a"})(), None)
        progress.finish()
    assert "links 1/2 · accounts 1" in tty.getvalue()
    assert pipe.getvalue() == ""
