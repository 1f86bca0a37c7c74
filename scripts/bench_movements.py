"""Benchmark the set-based movement writer: rows/s for a cold load, a no-op and a 1% change.

    .venv/bin/python scripts/bench_movements.py [--rows 200000] [--database-url URL]

Without --database-url it starts an embedded Postgres in a temporary directory. The
movements are synthetic (no HTTP): this measures the database write path that sync and
backfill share (sync.store.movements.MovementWriter). It prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _bench_db import scratch_database, server_url  # scripts/ is on sys.path
from sqlalchemy import text

from sync.api import schemas
from sync.store.db import make_engine, make_sessionmaker
from sync.store.migrate import upgrade
from sync.store.movements import MovementWriter

ACCOUNTS = 10
NOW = datetime(2026, 11, 1, 12, tzinfo=UTC)


def movements(account: str, count: int, variant: int = 0) -> Iterator[schemas.Movement]:
    """Synthetic movements; variant > 0 changes the status of every 100th one."""
    for i in range(count):
        status = "confirmed"
        if variant and i % 100 == 0:
            status = "reversed"
        yield schemas.Movement(
            id=f"mov_{account}_{i:07d}",
            account_id=account,
            amount=(i * 7919) % 1_000_000 - 500_000,
            currency="CLP",
            description=f"Compra número {i}",
            post_date=NOW - timedelta(days=i % 365),
            transaction_date=None if i % 3 else NOW - timedelta(days=i % 365, hours=3),
            type="transfer" if i % 2 else "other",
            status=status,
            pending=False,
            reference_id=str(100_000 + i),
            comment=None if i % 4 else "Pago factura",
            sender_holder_id="123456785" if i % 2 else None,
            sender_holder_name="Fintoc SpA" if i % 2 else None,
            sender_number=None,
            sender_institution_id="cl_banco_de_chile" if i % 2 else None,
            recipient_holder_id=None,
            recipient_holder_name=None,
            recipient_number=None,
            recipient_institution_id=None,
            sender_institution=None,
            recipient_institution=None,
        )


def run_pass(url: str, rows: int, variant: int) -> tuple[float, dict[str, int]]:
    """Write every account's movements, one transaction per account; (seconds, counts)."""
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    per_account = rows // ACCOUNTS
    totals: dict[str, int] = {}
    start = time.perf_counter()
    for a in range(ACCOUNTS):
        with sessions.begin() as session:
            writer = MovementWriter(session, f"acc_{a}", NOW)
            for mov in movements(f"acc_{a}", per_account, variant):
                writer.add(mov)
            writer.flush()
        for key, value in dataclasses.asdict(writer.result).items():
            if isinstance(value, int):  # counts (owners is a sample, not a count)
                totals[key] = totals.get(key, 0) + value
    elapsed = time.perf_counter() - start
    engine.dispose()
    return elapsed, totals


def main() -> None:
    """Parse flags, prepare a scratch database, print rows/s for three passes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--database-url", help="a server where a scratch database may be made")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-pg-") as tmp:
        url = scratch_database(server_url(Path(tmp), args.database_url), "bench_movements")
        engine = make_engine(url)
        upgrade(engine)
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO fintoc.links (id) VALUES ('link_bench')"))
            for a in range(ACCOUNTS):
                conn.execute(
                    text("INSERT INTO fintoc.accounts (id, link_id) VALUES (:a, 'link_bench')"),
                    {"a": f"acc_{a}"},
                )
        engine.dispose()
        for label, variant in (("cold load", 0), ("unchanged re-read", 0), ("1% changed", 1)):
            seconds, counts = run_pass(url, args.rows, variant)
            print(
                f"{label:>18}: {args.rows:,} movements in {seconds:6.2f} s = "
                f"{args.rows / seconds:9,.0f} rows/s  "
                f"(inserted {counts['inserted']:,}, updated {counts['updated']:,}, "
                f"changes logged {counts['changes']:,})",
                flush=True,
            )


if __name__ == "__main__":
    main()
