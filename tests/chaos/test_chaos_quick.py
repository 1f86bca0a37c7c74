"""The reduced, seeded chaos suite (`scripts/chaos.py --quick --seed 7`) as CI runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_quick_chaos_suite_has_no_violation() -> None:
    """Every quick scenario ends with its documented exit code, a clean rerun, 0 violations."""
    done = subprocess.run(
        [sys.executable, "scripts/chaos.py", "--quick", "--seed", "7"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    report = (
        done.stdout
        + "\n"
        + "\n".join(
            line for line in done.stderr.splitlines() if line.startswith(("  ok", "  FAIL", "    "))
        )
    )
    assert done.returncode == 0, report
    total = next(line for line in done.stdout.splitlines() if line.startswith("| TOTAL"))
    cells = [c.strip() for c in total.strip("|").split("|")]
    assert cells[4:7] == ["0", "0", "0"], total  # violations, lost, duplicates
    assert cells[7] == "0 failed"
