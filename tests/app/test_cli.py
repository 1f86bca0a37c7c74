"""The `fintoc-sync` command line, run as a user runs it: a subprocess with environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from sync.sandbox import Sandbox
from tests.helpers import pg_dump, run_cli


def test_commands_refuse_an_unmigrated_database_then_work_after_migrate(
    env: dict[str, str],
) -> None:
    """`sync` on an empty database exits 2 asking for migrate; after migrate it runs."""
    refused = run_cli("sync", env=env)
    assert refused.returncode == 2
    assert "fintoc-sync migrate" in refused.stderr
    migrated = run_cli("migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert "migrated" in migrated.stdout
    again = run_cli("migrate", env=env)
    assert "up to date" in again.stdout


def test_full_cli_flow_never_shows_a_token(
    env: dict[str, str], sandbox: Sandbox, tmp_path: Path, fresh_db_url: str
) -> None:
    """migrate, links add --from-file, sync, links list: right exit codes, no token anywhere."""
    tokens = sandbox.link_tokens()
    token_file = tmp_path / "tokens.txt"
    token_file.write_text("# my links\n" + "\n".join(tokens) + "\n")
    outputs = [run_cli("migrate", "--log-level", "DEBUG", env=env)]
    outputs.append(
        run_cli("links", "add", "--from-file", str(token_file), "--log-level", "DEBUG", env=env)
    )
    assert outputs[-1].returncode == 0
    assert f"registered {len(tokens)} new" in outputs[-1].stdout
    outputs.append(run_cli("links", "add", tokens[0], env=env))
    assert "registered 0 new" in outputs[-1].stdout
    outputs.append(run_cli("sync", "--log-level", "DEBUG", env=env))
    assert outputs[-1].returncode == 0, outputs[-1].stderr
    outputs.append(run_cli("links", "list", env=env))
    listing = outputs[-1].stdout
    assert "link_nMNejK7BT8oGbvO4" in listing and "yes" in listing
    printed = "".join(o.stdout + o.stderr for o in outputs)
    for token in tokens:
        assert token not in printed
        assert token.split("_token_")[-1] not in printed
    assert sandbox.secret_key not in printed
    dump = pg_dump(fresh_db_url)
    assert "link_tokens" in dump and len(dump) > 10_000
    for token in tokens:
        assert token not in dump


def test_sync_exit_codes_for_a_failing_link_and_a_wrong_key(
    env: dict[str, str], sandbox: Sandbox
) -> None:
    """One link failing exits 1 with its reason; a rejected secret key exits 2."""
    assert run_cli("migrate", env=env).returncode == 0
    run_cli("links", "add", *sandbox.link_tokens(), env=env)
    sandbox.faults.add("status_500", path=r"^/v1/links/" + sandbox.link_tokens()[1], times=None)
    partial = run_cli("sync", env=env)
    assert partial.returncode == 1
    assert "failed" in partial.stdout and "500" in partial.stdout
    wrong = run_cli("sync", env=env | {"FINTOC_SECRET_KEY": "sk_test_not_the_right_one"})
    assert wrong.returncode == 2
    assert "401" in wrong.stdout + wrong.stderr
    assert "sk_test_not_the_right_one" not in wrong.stdout + wrong.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"FINTOC_SECRET_KEY": ""}, "FINTOC_SECRET_KEY is not set"),
        ({"FINTOC_API_URL": "http://api.example.com"}, "plain http://"),
        ({"DATABASE_URL": "mysql://x@y/z"}, "DATABASE_URL must start with postgresql://"),
        ({"FINTOC_SYNC_CONCURRENCY": "many"}, "FINTOC_SYNC_CONCURRENCY must be a number"),
    ],
)
def test_configuration_errors_exit_2_with_one_clear_line(
    env: dict[str, str], change: dict[str, str], message: str
) -> None:
    """Bad configuration exits 2 and says what to fix in one line on stderr."""
    result = run_cli("sync", env=env | change)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_links_add_without_encryption_key_is_refused(env: dict[str, str]) -> None:
    """Registering a token with no FINTOC_SYNC_ENCRYPTION_KEY says how to make one."""
    assert run_cli("migrate", env=env).returncode == 0
    result = run_cli("links", "add", "some-token", env=env | {"FINTOC_SYNC_ENCRYPTION_KEY": ""})
    assert result.returncode == 2
    assert "Fernet.generate_key" in result.stderr
    assert "some-token" not in result.stderr


def test_every_command_has_help() -> None:
    """`--help` works for every command of the contract."""
    env = dict(os.environ)
    for cmd in (
        ["migrate"],
        ["links", "add"],
        ["links", "list"],
        ["sync"],
        ["daemon"],
        ["backfill"],
        ["sandbox"],
        ["demo"],
        ["report"],
    ):
        result = run_cli(*cmd, "--help", env=env)
        assert result.returncode == 0, cmd
        assert "usage: fintoc-sync" in result.stdout


def test_installed_command_works_from_another_directory_on_a_socket_url(
    env: dict[str, str], tmp_path: Path, pg_server_url: str
) -> None:
    """Migrations ship in the package: `migrate` works outside the checkout, via a socket URL."""
    url = make_url(env["DATABASE_URL"])
    if not url.query.get("host"):
        pytest.skip("the test server is reached over TCP, not a Unix socket")
    socket_url = f"postgresql://{url.username}@/{url.database}?host={url.query['host']}"
    result = run_cli("migrate", env=env | {"DATABASE_URL": socket_url}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    engine = create_engine(env["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM fintoc.alembic_version")) == 1
    engine.dispose()


def test_rotate_key_command_switches_keys(env: dict[str, str], sandbox: Sandbox) -> None:
    """`links rotate-key` re-encrypts under the new key; sync then works only with the new key."""
    from cryptography.fernet import Fernet

    assert run_cli("migrate", env=env).returncode == 0
    run_cli("links", "add", *sandbox.link_tokens(), env=env)
    new_key = Fernet.generate_key().decode()
    missing = run_cli("links", "rotate-key", env=env)
    assert missing.returncode == 2 and "FINTOC_SYNC_NEW_ENCRYPTION_KEY" in missing.stderr
    rotated = run_cli("links", "rotate-key", env=env | {"FINTOC_SYNC_NEW_ENCRYPTION_KEY": new_key})
    assert (
        rotated.returncode == 0 and f"re-encrypted {len(sandbox.link_tokens())}" in rotated.stdout
    )
    old = run_cli("sync", env=env)
    assert old.returncode == 2 and "not the key" in old.stderr
    ok = run_cli("sync", env=env | {"FINTOC_SYNC_ENCRYPTION_KEY": new_key})
    assert ok.returncode == 0, ok.stderr
