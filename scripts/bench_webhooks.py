"""Webhook benchmark: event-to-row latency and events/s stored. Prints, never asserts.

1. Latency: the sandbox (its clock caught up to now) refreshes its accounts every 6 h of
   sandbox time; each refresh delivers one signed ``account.refresh_intent.succeeded``
   per account to the receiver (waitress), whose workers re-read that account's
   movements into ``fintoc.movements``. Per event: the sandbox's first POST of it (its
   delivery record, wall clock) → the account's movements written (``processed_at``, set
   in the transaction that writes the movements, just before its commit). Target p50
   ≤ 1 s. The same for ``link.created`` (new links connected one at a time): delivery →
   the link's accounts synced.
2. Throughput: N pre-signed events POSTed by 8 concurrent clients; events/s stored (2xx).

    python scripts/bench_webhooks.py [--rounds 5] [--links 5] [--burst 2000] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
from cryptography.fernet import Fernet
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bench_db import scratch_database, server_url

from sync.app.http import serve_metrics
from sync.app.metrics import SyncMetrics
from sync.app.realtime import Realtime
from sync.app.wiring import Wiring
from sync.config import Settings
from sync.sandbox import Sandbox
from sync.sandbox.webhooks import make_event, signature_header
from sync.store import vault
from sync.store.db import make_engine, make_sessionmaker
from sync.store.migrate import upgrade

SECRET = "whsec_bench_secret"  # noqa: S105 - a throwaway secret of this benchmark


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> None:
    """Run both measurements and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="sandbox refreshes (6 h each)")
    parser.add_argument("--links", type=int, default=5, help="links connected (link.created)")
    parser.add_argument("--burst", type=int, default=2000, help="events POSTed for events/s")
    parser.add_argument("--workers", type=int, default=2, help="FINTOC_SYNC_WEBHOOK_WORKERS")
    parser.add_argument("--database-url", help="a Postgres server (default: embedded)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    url = scratch_database(server_url(tmp / "pg", args.database_url), "bench_webhooks")
    engine = make_engine(url.replace("postgresql://", "postgresql+psycopg://", 1), pool_size=12)
    upgrade(engine)
    key = Fernet.generate_key().decode()
    with Sandbox(seed=42) as sb:
        behind = datetime.now(UTC) - sb.world.now
        sb.advance(hours=behind.total_seconds() / 3600)  # dates as the real clock sees them
        settings = Settings(
            api_url=sb.url,
            secret_key=sb.secret_key,
            encryption_key=key,
            webhook_secret=SECRET,
            requests_per_second=500,
            webhook_workers=args.workers,
        )
        wiring = Wiring(settings)
        with make_sessionmaker(engine).begin() as session:
            vault.add_tokens(session, vault.make_cipher(key), sb.link_tokens(), datetime.now(UTC))
        with wiring.client() as client:
            wiring.pipeline(engine, client).run(kind="sync")
        metrics = SyncMetrics(process_metrics=False)
        realtime = Realtime(engine, wiring, metrics, idle=0.5).start()
        server = serve_metrics(metrics, "127.0.0.1", 0, webhooks=realtime.receiver)
        hook = f"http://127.0.0.1:{server.address[1]}/webhooks/fintoc"
        sb.deliver_webhooks(hook, SECRET, retry_base=0.1)
        # waitress warns on every queued request of the burst: the figure says it all
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)
        try:
            latency(engine, sb, args.rounds, args.links)
            throughput(engine, hook, args.burst)
        finally:
            server.shutdown()
            realtime.stop()
    engine.dispose()


def latency(engine, sb: Sandbox, rounds: int, links: int) -> None:  # type: ignore[no-untyped-def]
    """Sandbox delivery → rows written, per account event and per link.created."""
    assert sb.webhooks is not None
    for _ in range(rounds):
        sb.advance(hours=6)
        sb.webhooks.wait_idle(60)
        _drained(engine)
    for _ in range(links):  # one at a time: each link.created is measured alone
        sb.create_link()
        sb.webhooks.wait_idle(60)
        _drained(engine)
    delivered = {e["id"]: e["first_attempt_at"] for e in sb.webhooks.report()}
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT id, type, extract(epoch FROM processed_at) FROM fintoc.webhook_events"
                " WHERE status = 'processed'"
            )
        ).all()
        movements = conn.scalar(text("SELECT count(*) FROM fintoc.movements"))
    by_type: dict[str, list[float]] = {}
    for event_id, event_type, processed in rows:
        if delivered.get(event_id) is not None:
            by_type.setdefault(event_type, []).append(float(processed) - delivered[event_id])
    print(f"latency: {rounds} refreshes and {links} new links; {movements} movements stored")
    for event_type, values in sorted(by_type.items()):
        print(
            f"  {event_type} ({len(values)}): delivery → rows written: "
            f"p50 {pct(values, 0.5) * 1000:.0f} ms, p99 {pct(values, 0.99) * 1000:.0f} ms, "
            f"max {max(values) * 1000:.0f} ms, mean {statistics.fmean(values) * 1000:.0f} ms"
        )


def _drained(engine) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 120
    sql = "SELECT count(*) FROM fintoc.webhook_events WHERE status = 'received'"
    with engine.connect() as conn:
        while conn.scalar(text(sql)) and time.monotonic() < deadline:
            conn.rollback()
            time.sleep(0.05)


def throughput(engine, hook: str, n: int) -> None:  # type: ignore[no-untyped-def]
    """N signed events (a type the worker ignores) POSTed by 8 clients."""
    bodies = [
        json.dumps(make_event("payout.created", {"id": f"po_{i}"})).encode() for i in range(n)
    ]
    stamp = int(time.time())
    signed = [(b, signature_header(SECRET, b, stamp)) for b in bodies]

    def post(chunk: list[tuple[bytes, str]]) -> int:
        ok = 0
        with httpx.Client(timeout=30) as client:
            for body, header in chunk:
                r = client.post(hook, content=body, headers={"Fintoc-Signature": header})
                ok += r.status_code == 200
        return ok

    chunks = [signed[i::8] for i in range(8)]
    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        stored = sum(pool.map(post, chunks))
    elapsed = time.perf_counter() - started
    with engine.connect() as conn:
        rows = conn.scalar(
            text("SELECT count(*) FROM fintoc.webhook_events WHERE type='payout.created'")
        )
    print(
        f"throughput: {stored}/{n} stored (2xx) in {elapsed:.2f}s "
        f"= {stored / elapsed:.0f} events/s;"
        f" rows {rows}"
    )


if __name__ == "__main__":
    main()
