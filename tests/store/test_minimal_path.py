"""The embedded Postgres starts under cron's minimal PATH (/usr/bin:/bin)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

PROBE = """
import shutil
from sync.store.db import sbin_on_path
with sbin_on_path():
    print(shutil.which("useradd") or "missing")
"""


@pytest.mark.skipif(not Path("/usr/sbin/useradd").exists(), reason="no useradd on this system")
def test_useradd_is_found_while_the_embedded_server_starts(tmp_path: Path) -> None:
    """Under env -i PATH=/usr/bin:/bin, the PATH pgserver's `useradd` runs with finds it."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("/sbin/useradd")
