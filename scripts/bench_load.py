"""Load benchmark: a cold sync and a full backfill of a large sandbox organization.

    .venv/bin/python scripts/bench_load.py [--links 10000] [--scales 0.1,1] [--database-url URL]

For each scale it starts, as separate processes, the sandbox (``python -m sync.sandbox
--links N``) and the real CLI (``python -m sync …``: migrate, links add --from-file,
sync, backfill over the sandbox's whole movement history), against a fresh database of
an embedded Postgres in a temporary directory (or of --database-url's server). For each
command it prints wall time, peak RSS of that process alone (``os.wait4`` rusage), the
``/v1`` requests the sandbox answered (``GET /_sandbox/stats``) and the rows in the
tables afterwards. Comparing the scales shows whether memory grows with the data.
It prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from _bench_db import scratch_database, server_url  # scripts/ is on sys.path
from _bench_proc import Measured, SandboxProcess, run_measured
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text

TABLES = ("links", "accounts", "balance_snapshots", "movements", "backfill_chunks", "sync_runs")
# The sandbox's clock starts at 2026-11-01T12:00Z; its movements cover ~400 days before.
HISTORY = ("2025-09-01", "2026-11-02")


def _counts(db_url: str) -> dict[str, int]:
    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        counts = {t: int(conn.scalar(text(f"SELECT count(*) FROM fintoc.{t}"))) for t in TABLES}  # noqa: S608 (constant names)
    engine.dispose()
    return counts


def run_scale(
    n_links: int,
    server: str,
    work: Path,
    concurrency: int,
    profile: Path | None = None,
    rate: str = "100000",
    backfill: bool = True,
    latency: str = "0",
) -> None:
    """Everything at one size; prints a table."""
    db_url = scratch_database(server, "bench_load")
    tokens = work / f"tokens-{n_links}.txt"
    started = time.monotonic()
    sandbox = SandboxProcess(n_links, tokens, ["--latency", latency])
    print(f"\n== {n_links:,} links (sandbox up in {time.monotonic() - started:.1f}s)", flush=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FINTOC", "DATABASE"))}
    env |= {
        "DATABASE_URL": db_url,
        "FINTOC_API_URL": sandbox.url,
        "FINTOC_SECRET_KEY": sandbox.key,
        "FINTOC_SYNC_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "FINTOC_SYNC_REQUESTS_PER_SECOND": rate,  # default: none (the sandbox has no quota)
        "FINTOC_SYNC_CONCURRENCY": str(concurrency),
    }
    cli = [sys.executable, "-m", "sync"]
    steps = [
        ("migrate", [*cli, "migrate"]),
        ("links add", [*cli, "links", "add", "--from-file", str(tokens)]),
        ("sync (cold)", [*cli, "sync"]),
        (
            "backfill",
            # one chunk per account: a request per ~100 movements, as the history is short
            [*cli, "backfill", "--since", HISTORY[0], "--until", HISTORY[1], "--chunk-days", "500"],
        ),
    ]
    if not backfill:
        steps = steps[:3]
    results: list[tuple[Measured, dict[str, int]]] = []
    for name, cmd in steps:
        if profile is not None and name in ("sync (cold)", "backfill"):
            out = profile / f"{n_links}-{name.split()[0]}.prof"
            cmd = [sys.executable, "-m", "cProfile", "-o", str(out), *cmd[1:]]
        before = sandbox.requests()
        seconds, rss, code, tail = run_measured(cmd, env, work / f"{n_links}-{name.split()[0]}.log")
        measured = Measured(name, seconds, rss, sandbox.requests() - before, code, tail)
        results.append((measured, _counts(db_url)))
        print(
            f"   {name:<12} {seconds:8.1f}s  peak RSS {rss:7.1f} MiB  "
            f"{measured.requests:>8,} requests  exit {code}  rows {json.dumps(results[-1][1])}",
            flush=True,
        )
        if rate != "100000" and measured.requests:
            floor = measured.requests / float(rate)
            print(f"      {seconds / floor:.2f}× requests/budget ({floor:.0f} s)", flush=True)
        if code != 0:
            print(f"      {tail}", flush=True)
    print(f"   sandbox process peak RSS {sandbox.stop():.1f} MiB")


def main() -> None:
    """Parse the flags and run each scale."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--links", type=int, default=10_000, help="links at full scale")
    parser.add_argument("--scales", default="0.1,1", help="fractions of --links to run")
    parser.add_argument("--concurrency", type=int, default=4, help="FINTOC_SYNC_CONCURRENCY")
    parser.add_argument("--database-url", help="a server to create scratch databases on")
    parser.add_argument("--profile", type=Path, help="write cProfile output of sync/backfill here")
    parser.add_argument(
        "--requests-per-second",
        default="100000",
        help="FINTOC_SYNC_REQUESTS_PER_SECOND (default: no limit)",
    )
    parser.add_argument("--no-backfill", action="store_true", help="migrate, links add, sync")
    parser.add_argument("--latency", default="0", help="sandbox delay per /v1 request, e.g. 50ms")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_load_") as tmp:
        work = Path(tmp)
        server = server_url(work / "pg", args.database_url)
        for scale in (float(s) for s in args.scales.split(",")):
            n_links = max(1, int(args.links * scale))
            run_scale(
                n_links,
                server,
                work,
                args.concurrency,
                args.profile,
                args.requests_per_second,
                not args.no_backfill,
                args.latency,
            )


if __name__ == "__main__":
    main()
