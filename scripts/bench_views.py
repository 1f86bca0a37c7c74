"""Plan the analyst views at size: EXPLAIN ANALYZE on 3M movements and 30,000 accounts.

    .venv/bin/python scripts/bench_views.py [--accounts 30000] [--movements 3000000]
                                            [--database-url URL] [--plans]

Without --database-url it starts an embedded Postgres in a temporary directory. The rows
are synthetic and inserted directly with generate_series (no HTTP, no loader): 10,000
links of 3 accounts, ~12 balance snapshots per account over a year, a few status
transitions per link, the movements spread over 13 months (1% removed), and 2,000 sync
runs. Then every view is planned and run the ways an analyst and `fintoc-sync report` ask
it, and the planning and execution times are printed. It prints figures; it asserts
nothing (docs/decisions/0005-analyst-views.md quotes them).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from _bench_db import scratch_database, server_url  # scripts/ is on sys.path
from sqlalchemy import Connection, text

from sync.app.report import render
from sync.store.db import make_engine
from sync.store.migrate import upgrade

SNAPSHOTS_PER_ACCOUNT = 12
TRANSITIONS_PER_LINK = 3
RUNS = 2_000
# What a DBA might give a reporting role (ALTER ROLE … SET work_mem); we set nothing.
BIG_WORK_MEM = "256MB"
# Indexes a plan might want, tried one at a time (each is dropped again): the figures say
# whether a migration should add it.
CANDIDATE_INDEXES = {
    "CREATE INDEX bench_candidate ON fintoc.movements (account_id, post_date) "
    "INCLUDE (amount, currency) WHERE removed_at IS NULL": [
        "monthly_cash_flow: every account and month",
        "monthly_cash_flow: per currency and month (report)",
    ],
}
HEAVY = (
    "daily_balances: count",
    "daily_balances: every",
    "monthly_cash_flow: every",
    "monthly_cash_flow: per",
)

# Every statement is a fixed string with :named parameters only.
SEED = {
    "institutions": """
        INSERT INTO fintoc.institutions (id, name, country)
        SELECT 'cl_bank_' || i, 'Banco ' || i, 'cl' FROM generate_series(1, 10) i""",
    "links": """
        INSERT INTO fintoc.links (id, institution_id, holder_type, status, active,
                                  first_seen_at, last_seen_at, last_synced_at)
        SELECT 'link_' || l, 'cl_bank_' || (l % 10 + 1), 'individual',
               CASE WHEN l % 20 = 0 THEN 'login_required' ELSE 'active' END, true,
               now() - interval '400 days', now(), now() - (l % 60) * interval '1 minute'
        FROM generate_series(1, :links) l""",
    "accounts": """
        INSERT INTO fintoc.accounts (id, link_id, name, currency, balance_current,
                                     balance_available, first_seen_at, last_seen_at)
        SELECT 'acc_' || a, 'link_' || ((a - 1) / 3 + 1), 'Cuenta ' || a,
               CASE WHEN a % 5 = 0 THEN 'USD' ELSE 'CLP' END,
               (a * 7919) % 10000000, (a * 7919) % 10000000,
               now() - interval '400 days', now()
        FROM generate_series(1, :accounts) a""",
    "balance_snapshots": """
        INSERT INTO fintoc.balance_snapshots (account_id, observed_at, balance_available,
                                              balance_current, balance_limit, currency)
        SELECT 'acc_' || a, now() - interval '365 days' + s * interval '30 days'
                             + (a % 1440) * interval '1 minute',
               (a * 7919 + s * 104729) % 10000000, (a * 7919 + s * 104729) % 10000000, NULL,
               CASE WHEN a % 5 = 0 THEN 'USD' ELSE 'CLP' END
        FROM generate_series(1, :accounts) a, generate_series(0, :snapshots - 1) s""",
    "link_status_transitions": """
        INSERT INTO fintoc.link_status_transitions (link_id, from_status, to_status, observed_at)
        SELECT 'link_' || l,
               CASE WHEN t = 0 THEN NULL WHEN t % 2 = 1 THEN 'active' ELSE 'login_required' END,
               CASE WHEN t % 2 = 0 THEN 'active' ELSE 'login_required' END,
               now() - interval '90 days' + t * interval '20 days' + l * interval '1 second'
        FROM generate_series(1, :links) l, generate_series(0, :transitions - 1) t""",
    "movements": """
        INSERT INTO fintoc.movements (id, account_id, amount, currency, description, post_date,
                                      type, status, pending, removed_at, first_seen_at,
                                      last_seen_at)
        SELECT 'mov_' || m, 'acc_' || (m % :accounts + 1),
               CASE WHEN m % 3 = 0 THEN (m % 500000) ELSE -(m % 200000) END,
               CASE WHEN (m % :accounts + 1) % 5 = 0 THEN 'USD' ELSE 'CLP' END,
               'Movimiento ' || m,
               date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                   - (m % 395) * interval '1 day',
               'transfer', 'confirmed', false,
               CASE WHEN m % 100 = 0 THEN now() END, now(), now()
        FROM generate_series(1, :movements) m""",
    "sync_runs": """
        INSERT INTO fintoc.sync_runs (kind, started_at, finished_at, status, links_total,
                                      links_synced, links_failed, accounts_upserted,
                                      snapshots_written, transitions_written, movements_upserted,
                                      movements_changed, movements_removed, errors)
        SELECT CASE WHEN r % 10 = 0 THEN 'backfill' ELSE 'daemon' END,
               now() - (:runs - r) * interval '15 minutes',
               now() - (:runs - r) * interval '15 minutes' + interval '2 minutes',
               CASE WHEN r % 7 = 0 THEN 'partial' ELSE 'succeeded' END,
               :links, :links, 0, 0, 0, 0, 0, 0, 0,
               CASE WHEN r % 7 = 0 THEN jsonb_build_array(jsonb_build_object(
                   'link_id', 'link_' || (r % 500 + 1), 'kind', 'HTTPError', 'message', '500'))
                    ELSE '[]'::jsonb END
        FROM generate_series(1, :runs) r""",
}

QUERIES = {
    "daily_balances: count(*) of the whole view": "SELECT count(*) FROM fintoc.daily_balances",
    "daily_balances: one account, every day": (
        "SELECT * FROM fintoc.daily_balances WHERE account_id = 'acc_777'"
    ),
    "daily_balances: every account, yesterday": (
        "SELECT * FROM fintoc.daily_balances WHERE day = current_date - 1"
    ),
    "balance_snapshots: every account, end of yesterday": (
        "SELECT DISTINCT ON (s.account_id) s.account_id, s.balance_current, s.observed_at "
        "FROM fintoc.balance_snapshots s WHERE s.observed_at < "
        "((now() AT TIME ZONE 'UTC')::date)::timestamp AT TIME ZONE 'UTC' "
        "ORDER BY s.account_id, s.observed_at DESC, s.id DESC"
    ),
    "daily_balances: 8 accounts, last 90 days (report)": (
        "SELECT account_id, day, balance_current_major FROM fintoc.daily_balances "
        "WHERE account_id = ANY (ARRAY['acc_1','acc_2','acc_3','acc_4','acc_6','acc_7',"
        "'acc_8','acc_9']) AND day > current_date - 90"
    ),
    "monthly_cash_flow: every account and month": (
        "SELECT count(*), sum(inflow) FROM fintoc.monthly_cash_flow"
    ),
    "monthly_cash_flow: one account": (
        "SELECT * FROM fintoc.monthly_cash_flow WHERE account_id = 'acc_777'"
    ),
    "monthly_cash_flow: per currency and month (report)": (
        "SELECT currency, month, sum(inflow_major), sum(outflow_major) "
        "FROM fintoc.monthly_cash_flow GROUP BY 1, 2"
    ),
    "link_health: every link": "SELECT count(*), sum(consecutive_failures) FROM fintoc.link_health",
    "link_health: one link": "SELECT * FROM fintoc.link_health WHERE link_id = 'link_777'",
    "link_health: links not active": (
        "SELECT * FROM fintoc.link_health WHERE status IS DISTINCT FROM 'active'"
    ),
    "data_freshness: every table": "SELECT * FROM fintoc.data_freshness",
}


def seed(conn: Connection, accounts: int, movements: int) -> None:
    """Insert the synthetic organization, then ANALYZE it as autovacuum eventually would."""
    params = {
        "accounts": accounts,
        "links": (accounts + 2) // 3,
        "movements": movements,
        "snapshots": SNAPSHOTS_PER_ACCOUNT,
        "transitions": TRANSITIONS_PER_LINK,
        "runs": RUNS,
    }
    for table, sql in SEED.items():
        start = time.perf_counter()
        conn.execute(text(sql), params)
        conn.commit()
        count = conn.scalar(text(f"SELECT count(*) FROM fintoc.{table}"))  # noqa: S608
        print(f"  {table:<24} {count:>10,} rows in {time.perf_counter() - start:6.1f} s")
    conn.commit()
    # What autovacuum would have done by now: statistics and the visibility map (without
    # it an index-only scan is not one, and a candidate index would be judged unfairly).
    conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))


def explain(conn: Connection, sql: str) -> tuple[float, float, int, str]:
    """(planning ms, execution ms, rows returned, the plan as text) of one run."""
    doc = conn.scalar(text(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}"))
    top = (doc if isinstance(doc, list) else json.loads(doc))[0]
    plan_text = "\n".join(
        conn.scalars(text(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) {sql}"))
    )
    return top["Planning Time"], top["Execution Time"], int(top["Plan"]["Actual Rows"]), plan_text


def main() -> None:
    """Parse flags, seed a scratch database, print the figures of every query."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=30_000)
    parser.add_argument("--movements", type=int, default=3_000_000)
    parser.add_argument("--database-url", help="a server where a scratch database may be made")
    parser.add_argument("--plans", action="store_true", help="also print each plan")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-pg-") as tmp:
        url = scratch_database(server_url(Path(tmp), args.database_url), "bench_views")
        engine = make_engine(url)
        upgrade(engine)
        print(f"seeding {args.accounts:,} accounts and {args.movements:,} movements:", flush=True)
        with engine.connect() as conn:
            seed(conn, args.accounts, args.movements)
            version = conn.scalar(text("SHOW server_version"))
            print(f"\nPostgres {version}; each query run twice, the second (warm) run shown")
            print(f"{'query':<52} {'planning':>9} {'execution':>11} {'rows':>11}")
            for label, sql in QUERIES.items():
                explain(conn, sql)  # warm the cache: the figures are of a warm run
                planning, execution, rows, plan = explain(conn, sql)
                print(f"{label:<52} {planning:7.1f} ms {execution:9.1f} ms {rows:>11,}")
                if args.plans:
                    print(plan + "\n", flush=True)
            # The whole-organization aggregates spill their hash tables at the default
            # work_mem (4MB): how much memory buys.
            conn.execute(text(f"SET work_mem = '{BIG_WORK_MEM}'"))
            print(f"\nthe same with work_mem = {BIG_WORK_MEM}:")
            for label, sql in QUERIES.items():
                if label.startswith(HEAVY):
                    explain(conn, sql)
                    planning, execution, rows, plan = explain(conn, sql)
                    print(f"{label:<52} {planning:7.1f} ms {execution:9.1f} ms {rows:>11,}")
                    if args.plans:
                        print(plan + "\n", flush=True)
            conn.execute(text("RESET work_mem"))  # candidates compare with the first table
            for ddl, labels in CANDIDATE_INDEXES.items():
                print(f"\nwith a candidate index: {ddl}")
                conn.execute(text(ddl))
                conn.commit()
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(
                    text("VACUUM ANALYZE fintoc.movements")
                )
                for label in labels:
                    sql = QUERIES[label]
                    explain(conn, sql)
                    planning, execution, rows, plan = explain(conn, sql)
                    print(f"{label:<52} {planning:7.1f} ms {execution:9.1f} ms {rows:>11,}")
                    if args.plans:
                        print(plan + "\n", flush=True)
                conn.execute(text("DROP INDEX fintoc.bench_candidate"))
                conn.commit()
        start = time.perf_counter()
        page, summary = render(engine)
        print(
            f"\nfintoc-sync report at this size: {time.perf_counter() - start:.1f} s, "
            f"{len(page) / 1024:.0f} KB, {summary.charts} charts"
        )
        engine.dispose()


if __name__ == "__main__":
    main()
