"""The process entry point: the CLI imported with the GC off, then frozen, GC back on."""

from __future__ import annotations

import gc

import pytest

from sync.app import launch


def test_run_leaves_the_gc_enabled_and_the_imports_frozen(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """After start-up the cyclic GC is on again (off would leak every cycle) and what was
    imported is out of its generations."""
    monkeypatch.setattr("sys.argv", ["fintoc-sync", "--version"])
    gc.unfreeze()
    try:
        try:
            code = launch.run()
        except SystemExit as exc:  # argparse's --version may exit instead of returning
            code = exc.code
        assert code in (0, None)
        assert gc.isenabled()
        assert gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()
        gc.enable()
    assert "fintoc-sync" in capsys.readouterr().out


def test_the_cli_imports_no_http_or_run_layer_until_a_command_needs_it() -> None:
    """`migrate` and `links add` start faster when the CLI does not import httpx, the
    API client or the run layer: each command imports what it uses."""
    import subprocess
    import sys

    probe = (
        "import sys, sync.app.cli, sync.app.commands; "
        "print(sorted(m for m in sys.modules if m == 'httpx' or m.startswith("
        "('sync.api', 'sync.run.backfill', 'sync.run.pipeline', 'sync.run.webhooks'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
