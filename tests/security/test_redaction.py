"""No secret key and no link token in anything a command prints, logs or stores."""

from __future__ import annotations

import json

from tests.security.conftest import Gauntlet


def _leaks(text: str, secrets: list[str]) -> list[str]:
    return [s for s in secrets if s in text]


def test_every_command_ran_and_met_the_faults(gauntlet: Gauntlet) -> None:
    """The gauntlet is meaningful: commands ran, links failed in the ways we armed."""
    codes = {name: o.returncode for name, o in gauntlet.outputs.items()}
    assert codes == {
        "migrate": 0,
        "links add file": 0,
        "links add argv": 0,
        "links add stdin": 0,
        "sync text": 1,
        "sync json": 1,
        "sync wrong key": 2,
        "backfill": 1,
        "links list": 0,
        "rotate-key": 0,
        "sync old key": 2,
        "backfill wrong key": 2,
    }, gauntlet.outputs
    failures = gauntlet.outputs["sync text"].stdout
    for reason in ("HTTP 502", "HTTP 429", "HTTP 404", "HTTP 500", "not valid JSON"):
        assert reason in failures, reason
    assert "daemon stopped" in gauntlet.daemon_log
    assert gauntlet.stored_errors, "failures must be recorded in the database"


def test_no_secret_in_stdout_or_stderr_of_any_command(gauntlet: Gauntlet) -> None:
    """stdout and stderr of every command at DEBUG, failures included, hold no secret."""
    assert len(gauntlet.outputs) >= 5, "the gauntlet should have run every command"
    assert gauntlet.secrets, "the gauntlet should know the secrets it looks for"
    for name, result in gauntlet.outputs.items():
        assert not _leaks(result.stdout, gauntlet.secrets), name
        assert not _leaks(result.stderr, gauntlet.secrets), name


def test_json_log_streams_are_json_and_hold_no_secret(gauntlet: Gauntlet) -> None:
    """--log-format json writes one JSON object per line, none with a secret."""
    streams = [gauntlet.outputs["sync json"].stderr, gauntlet.daemon_log]
    for stream in streams:
        docs = [json.loads(line) for line in stream.splitlines() if line.strip()]
        assert docs
        assert {d["level"] for d in docs} >= {"info", "error"}
        assert not _leaks(json.dumps(docs, ensure_ascii=False), gauntlet.secrets)


def test_daemon_log_file_holds_no_secret(gauntlet: Gauntlet) -> None:
    """The daemon's log file (a cycle with failing links, then SIGTERM) holds no secret."""
    assert not _leaks(gauntlet.daemon_log, gauntlet.secrets)


def test_recorded_errors_hold_no_secret(gauntlet: Gauntlet) -> None:
    """sync_runs.errors, sync_runs.error_summary and links.last_sync_error hold no secret."""
    assert not _leaks("\n".join(gauntlet.stored_errors), gauntlet.secrets)


def test_database_dump_holds_no_plaintext_secret(gauntlet: Gauntlet) -> None:
    """A pg_dump of the whole database holds no token, key or token tail in clear."""
    assert "link_tokens" in gauntlet.dump
    assert not _leaks(gauntlet.dump, gauntlet.secrets)
