"""`status`, `doctor`, the served sandbox's walkthrough and a `--help` that teaches."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sync.app.style import mark, wants_colour
from sync.sandbox import Sandbox
from tests.helpers import ROOT, run_cli


@pytest.fixture
def synced(env: dict[str, str], sandbox: Sandbox) -> dict[str, str]:
    """A migrated database with the sandbox's tokens registered and one sync done."""
    assert run_cli("migrate", env=env).returncode == 0
    assert run_cli("links", "add", *sandbox.link_tokens(), env=env).returncode == 0
    assert run_cli("sync", env=env).returncode == 0
    return env


def test_status_json_reports_runs_freshness_and_pending_events(synced: dict[str, str]) -> None:
    """After a good sync `status --json` is healthy (exit 0), with freshness per table."""
    result = run_cli("status", "--json", env=synced)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["healthy"] and doc["runs"][0]["status"] == "succeeded"
    assert doc["freshness"]["accounts"] and doc["freshness"]["links"]
    assert doc["pending_webhook_events"] == 0  # the inbox exists (migration 0006) and is empty
    assert doc["failing_links"] == []


def test_status_names_the_failing_link_and_exits_1(
    synced: dict[str, str], sandbox: Sandbox
) -> None:
    """A link failing in the latest run shows under "links failing now"; exit 1."""
    token = sandbox.link_tokens()[1]
    sandbox.faults.add("status_500", path=r"^/v1/accounts$", match_query=token, times=None)
    assert run_cli("sync", env=synced).returncode == 1
    result = run_cli("status", env=synced)
    assert result.returncode == 1
    failing = result.stdout.split("links failing now")[1]
    assert token.split("_token_")[0] in failing
    assert "UTC" in result.stdout and "\x1b[" not in result.stdout


def test_doctor_passes_every_check_on_a_good_setup(synced: dict[str, str]) -> None:
    """`doctor` prints one ok line per check and exits 0 when everything is right."""
    result = run_cli("doctor", env=synced)
    assert result.returncode == 0, result.stdout
    lines = result.stdout.strip().splitlines()
    names = ["database", "schema", "vault key", "api", "clock", "secret key"]
    assert [any(n in line for line in lines) for n in names] == [True] * len(names)
    assert all("ok" in line for line in lines)
    assert "\x1b[" not in result.stdout  # not a terminal: no colour


def test_doctor_names_a_wrong_secret_key_and_a_wrong_vault_key(synced: dict[str, str]) -> None:
    """A rejected secret key and a vault key that decrypts nothing each get a FAIL; exit 2."""
    from cryptography.fernet import Fernet

    wrong = synced | {
        "FINTOC_SECRET_KEY": "sk_test_not_the_right_one",
        "FINTOC_SYNC_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    }
    result = run_cli("doctor", env=wrong)
    assert result.returncode == 2
    fails = [line for line in result.stdout.splitlines() if "FAIL" in line]
    assert any("secret key" in line and "401" in line for line in fails)
    assert any("vault key" in line and "cannot decrypt" in line for line in fails)
    assert "sk_test_not_the_right_one" not in result.stdout


def test_doctor_on_an_unreachable_database_and_api_exits_2(env: dict[str, str]) -> None:
    """Nothing reachable: every line says why, no traceback, exit 2."""
    down = env | {
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/db",
        "FINTOC_API_URL": "http://127.0.0.1:1",
    }
    result = run_cli("doctor", env=down)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stdout.count("FAIL") >= 4


def test_served_sandbox_walkthrough_loads_movements(env: dict[str, str], tmp_path: Path) -> None:
    """`fintoc-sync sandbox` follows the wall clock and prints export lines; pasting them and
    following the README (migrate, links add --from-file, sync) loads movements."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sync", "sandbox", "--port", "0"],
        cwd=ROOT,
        env=env | {"XDG_RUNTIME_DIR": str(tmp_path)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("# Ctrl-C"):
                break
        banner = "".join(lines)
        exports = dict(
            line.removeprefix("export ").split("=", 1)
            for line in lines
            if line.startswith("export FINTOC_API_URL") or line.startswith("export FINTOC_SECRET")
        )
        add_line = next(line for line in lines if "links add --from-file" in line)
        assert "following the wall clock" in banner
        user = env | {k: v.strip() for k, v in exports.items()}
        assert run_cli("migrate", env=user).returncode == 0
        assert run_cli(*add_line.split()[1:], env=user).returncode == 0
        result = run_cli("sync", "--json", env=user)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["counts"]["movements_upserted"] > 0
    finally:
        proc.terminate()
        proc.wait(10)


def test_bare_command_prints_help_with_environment_and_exit_codes() -> None:
    """`fintoc-sync` alone prints the help (environment, exit codes) on stderr and exits 2."""
    result = run_cli(env=dict(os.environ))
    assert result.returncode == 2
    assert "FINTOC_SYNC_ENCRYPTION_KEY" in result.stderr and "exit codes:" in result.stderr


@pytest.mark.parametrize(
    "cmd",
    [
        ["migrate"], ["links"], ["links", "add"], ["links", "list"], ["links", "remove"],
        ["links", "rotate-key"], ["sync"], ["daemon"], ["backfill"], ["status"], ["doctor"],
        ["sandbox"], ["demo"],
    ],
)  # fmt: skip
def test_every_command_help_has_a_description_and_examples(cmd: list[str]) -> None:
    """Each command's --help has a description and an examples section."""
    result = run_cli(*cmd, "--help", env=dict(os.environ))
    assert result.returncode == 0
    assert "examples:" in result.stdout and f"fintoc-sync {' '.join(cmd)}" in result.stdout


def test_global_options_go_before_the_command_and_meaningless_flags_are_refused(
    env: dict[str, str],
) -> None:
    """`--database-url U --log-level ERROR migrate` applies both; `migrate --api-url` exits 2."""
    url = env["DATABASE_URL"]
    broken = env | {"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/db"}
    result = run_cli("--database-url", url, "--log-level", "ERROR", "migrate", env=broken)
    assert result.returncode == 0, result.stderr
    refused = run_cli("migrate", "--api-url", "http://x", env=env)
    assert refused.returncode == 2 and "unrecognized arguments" in refused.stderr


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    """Colour needs a TTY; NO_COLOR (any value) turns it off even there."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert wants_colour(_Tty()) and not wants_colour(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not wants_colour(_Tty())
    assert mark(True, False).strip() == "✓ ok" and "\x1b[" in mark(False, True)
