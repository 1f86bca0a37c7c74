"""Process helpers shared by the benchmark scripts: a measured command, a sandbox process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Measured:
    """One command: how long, how much memory, how many requests, what it printed."""

    name: str
    seconds: float
    peak_rss_mb: float
    requests: int
    exit_code: int
    tail: str


def run_measured(
    cmd: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT
) -> tuple[float, float, int, str]:
    """Run cmd to completion; (seconds, peak RSS MiB of that process, exit code, output tail)."""
    start = time.monotonic()
    with log.open("w") as out:
        # our own interpreters with fixed arguments: no untrusted input
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - start
    tail = " | ".join(log.read_text().strip().splitlines()[-2:])[-300:]
    return seconds, usage.ru_maxrss / 1024, proc.returncode, tail


class SandboxProcess:
    """``python -m sync.sandbox --links N [extra]`` in its own process, so its memory is
    not ours; its link tokens are written to ``token_file``."""

    def __init__(self, n_links: int, token_file: Path, extra: list[str] | None = None) -> None:
        cmd = [sys.executable, "-m", "sync.sandbox", "--port", "0", "--links", str(n_links)]
        cmd += extra or []
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)  # noqa: S603 (fixed argv)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url:
            raise RuntimeError(f"the sandbox did not start: {' '.join(cmd)}")
        self.key = self.proc.stdout.readline().strip()
        with token_file.open("w") as tokens:
            for _ in range(n_links):
                tokens.write(self.proc.stdout.readline())
        self.http = httpx.Client(
            base_url=self.url, headers={"Authorization": self.key}, timeout=600
        )

    def requests(self) -> int:
        """``/v1`` requests answered so far."""
        return int(self.http.get("/_sandbox/stats").json()["requests"])

    def movements(self) -> int:
        """Movements the sandbox serves now (any status), over all existing links."""
        return int(self.http.get("/_sandbox/stats", params={"movements": 1}).json()["movements"])

    def stop(self) -> float:
        """SIGTERM; the sandbox's own peak RSS in MiB."""
        self.http.close()
        self.proc.send_signal(signal.SIGTERM)
        _, _, usage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = 0
        return usage.ru_maxrss / 1024
