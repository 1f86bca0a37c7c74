"""The reduced, seeded soak (`scripts/soak.py --quick --seed 7`) as CI runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _figure(output: str, name: str) -> str:
    line = next(line for line in output.splitlines() if line.strip().startswith(name))
    return line.strip()[len(name) :].split()[0]


def test_quick_soak_holds() -> None:
    """The daemon under random faults for ~25 s: no violation, lock or connection left."""
    done = subprocess.run(
        [sys.executable, "scripts/soak.py", "--quick", "--seed", "7"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    out = done.stdout
    assert int(_figure(out, "faults injected")) >= 10
    for name in ("violations", "rows lost", "duplicates", "leaked locks", "leaked connections"):
        assert _figure(out, name) == "0", out
