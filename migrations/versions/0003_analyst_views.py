"""Analyst views: daily_balances, monthly_cash_flow, link_health, data_freshness.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

Views, not tables: they are always current and cost nothing to keep. Every view
and column has a COMMENT (docs/schema.md is generated from them), every
timestamp-to-day step is done in UTC whatever the session's TimeZone, and money
is also given in major units through `fintoc.to_major(amount, currency)`
(CLP 0 decimals; USD, EUR, MXN 2; NULL for an unknown currency rather than a
guess). See docs/decisions/0005-analyst-views.md.
"""

from collections.abc import Mapping, Sequence

from alembic import op

from migrations.grants import grant_analyst_read

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The UTC calendar day of "now", independent of the session's TimeZone.
TODAY = "(now() AT TIME ZONE 'UTC')::date"
# 720 hours, not '30 days': day arithmetic on timestamptz follows the session's
# TimeZone and would be 23 or 25 hours long across a DST change.
WINDOW_START = "now() - interval '720 hours'"

FUNCTIONS = {
    "currency_exponent(text)": (
        """
        CREATE FUNCTION fintoc.currency_exponent(currency text) RETURNS integer
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        AS $$ SELECT CASE upper(currency)
                        WHEN 'CLP' THEN 0 WHEN 'USD' THEN 2 WHEN 'EUR' THEN 2 WHEN 'MXN' THEN 2
                     END $$
        """,
        "Decimal places of an ISO 4217 currency as Fintoc sends it (CLP 0; USD, EUR, MXN 2); "
        "NULL for any other code",
    ),
    "to_major(numeric, text)": (
        """
        CREATE FUNCTION fintoc.to_major(amount numeric, currency text) RETURNS numeric
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        AS $$ SELECT round(amount / 10::numeric ^ fintoc.currency_exponent(currency),
                           fintoc.currency_exponent(currency)) $$
        """,
        "An amount in integer minor units as major units of its currency (1050 USD -> 10.50, "
        "1050 CLP -> 1050); NULL when the currency is unknown",
    ),
}

DAILY_BALANCES = f"""
WITH day_end AS (
    -- the last snapshot of each account and UTC day: the balance at the end of that day
    SELECT DISTINCT ON (s.account_id, (s.observed_at AT TIME ZONE 'UTC')::date)
           s.account_id, (s.observed_at AT TIME ZONE 'UTC')::date AS day, s.observed_at,
           s.currency, s.balance_available, s.balance_current, s.balance_limit
    FROM fintoc.balance_snapshots s
    ORDER BY s.account_id, (s.observed_at AT TIME ZONE 'UTC')::date, s.observed_at DESC, s.id DESC
), spans AS (
    SELECT e.*, lead(e.day) OVER (PARTITION BY e.account_id ORDER BY e.day) AS next_day
    FROM day_end e
), held AS (
    -- each day-end balance holds until the day before the next one, or through today
    SELECT sp.account_id, sp.day + g.n AS day, sp.observed_at,
           coalesce(sp.currency, a.currency) AS currency,
           sp.balance_available, sp.balance_current, sp.balance_limit
    FROM spans sp
    JOIN fintoc.accounts a ON a.id = sp.account_id
    CROSS JOIN LATERAL generate_series(0, least(sp.next_day, {TODAY} + 1) - sp.day - 1) AS g(n)
)
SELECT h.account_id, h.day, h.currency,
       h.balance_available, h.balance_current, h.balance_limit,
       fintoc.to_major(h.balance_available, h.currency) AS balance_available_major,
       fintoc.to_major(h.balance_current, h.currency) AS balance_current_major,
       fintoc.to_major(h.balance_limit, h.currency) AS balance_limit_major,
       h.observed_at
FROM held h
"""

MONTHLY_CASH_FLOW = """
WITH flows AS (
    SELECT m.account_id,
           date_trunc('month', m.post_date AT TIME ZONE 'UTC')::date AS month,
           coalesce(m.currency, a.currency) AS currency,
           coalesce(sum(m.amount) FILTER (WHERE m.amount > 0), 0) AS inflow,
           coalesce(-sum(m.amount) FILTER (WHERE m.amount < 0), 0) AS outflow,
           sum(m.amount) AS net,
           count(*) AS movements
    FROM fintoc.movements m
    JOIN fintoc.accounts a ON a.id = m.account_id
    WHERE m.removed_at IS NULL
    GROUP BY m.account_id, date_trunc('month', m.post_date AT TIME ZONE 'UTC')::date,
             coalesce(m.currency, a.currency)
)
SELECT f.account_id, f.month, f.currency, f.inflow, f.outflow, f.net, f.movements,
       fintoc.to_major(f.inflow, f.currency) AS inflow_major,
       fintoc.to_major(f.outflow, f.currency) AS outflow_major,
       fintoc.to_major(f.net, f.currency) AS net_major
FROM flows f
"""

LINK_HEALTH = f"""
WITH spans AS (
    -- each transition starts a span that lasts until the next one (or is still open)
    SELECT t.link_id, t.to_status, t.observed_at AS began,
           lead(t.observed_at) OVER (PARTITION BY t.link_id ORDER BY t.observed_at, t.id) AS ended
    FROM fintoc.link_status_transitions t
), login_required AS (
    SELECT s.link_id,
           round(sum(extract(epoch FROM least(coalesce(s.ended, now()), now())
                                        - greatest(s.began, {WINDOW_START}))))::bigint AS seconds
    FROM spans s
    WHERE s.to_status = 'login_required'
      AND coalesce(s.ended, now()) > {WINDOW_START} AND s.began < now()
    GROUP BY s.link_id
), failures AS (
    -- finished sync/daemon runs since the link's last success that recorded it as failed
    SELECT l.id AS link_id, count(DISTINCT r.id) AS runs
    FROM fintoc.sync_runs r
    CROSS JOIN LATERAL jsonb_array_elements(
        CASE WHEN jsonb_typeof(r.errors) = 'array' THEN r.errors ELSE '[]' END) AS e(doc)
    JOIN fintoc.links l ON l.id = e.doc ->> 'link_id'
    WHERE r.kind IN ('sync', 'daemon') AND r.finished_at IS NOT NULL
      AND r.started_at > coalesce(l.last_synced_at, '-infinity')
    GROUP BY l.id
)
SELECT l.id AS link_id, i.name AS institution_name, l.status, since.status_since,
       coalesce(lr.seconds, 0) AS login_required_seconds_30d,
       l.last_synced_at, l.last_sync_error,
       coalesce(f.runs, 0) AS consecutive_failures,
       l.deleted_at
FROM fintoc.links l
LEFT JOIN fintoc.institutions i ON i.id = l.institution_id
LEFT JOIN LATERAL (
    -- the first transition into the current status after the last one into another
    SELECT min(t.observed_at) AS status_since
    FROM fintoc.link_status_transitions t
    WHERE t.link_id = l.id AND t.to_status = l.status
      AND t.observed_at > coalesce((
          SELECT max(o.observed_at) FROM fintoc.link_status_transitions o
          WHERE o.link_id = l.id AND o.to_status IS DISTINCT FROM l.status), '-infinity')
) since ON true
LEFT JOIN login_required lr ON lr.link_id = l.id
LEFT JOIN failures f ON f.link_id = l.id
"""

# Which run kinds load each table: `sync` and `daemon` run the same cycle (link
# list, accounts, snapshots, movements); `backfill` writes movement history.
LOADED_BY = {
    "institutions": ("sync", "daemon"),
    "links": ("sync", "daemon"),
    "link_status_transitions": ("sync", "daemon"),
    "accounts": ("sync", "daemon"),
    "balance_snapshots": ("sync", "daemon"),
    "movements": ("sync", "daemon", "backfill"),
    "movement_changes": ("sync", "daemon", "backfill"),
    "movement_cursors": ("sync", "daemon"),
    "backfill_chunks": ("backfill",),
    "sync_runs": ("sync", "daemon", "backfill"),
}


def _data_freshness() -> str:
    loads = ",\n        ".join(
        f"('{table}', ARRAY[{', '.join(repr(k) for k in kinds)}])"
        for table, kinds in LOADED_BY.items()
    )
    counts = "\n        UNION ALL ".join(
        f"SELECT '{table}', count(*) FROM fintoc.{table}" for table in LOADED_BY
    )
    return f"""
WITH loads(table_name, kinds) AS (
    VALUES {loads}
), counts(table_name, rows) AS (
        {counts}
)
SELECT l.table_name, r.finished_at AS last_loaded_at, r.id AS last_loaded_run_id,
       r.kind AS last_loaded_by, c.rows
FROM loads l
JOIN counts c ON c.table_name = l.table_name
LEFT JOIN LATERAL (
    SELECT x.id, x.kind, x.finished_at FROM fintoc.sync_runs x
    WHERE x.status = 'succeeded' AND x.kind = ANY (l.kinds) AND x.finished_at IS NOT NULL
    ORDER BY x.finished_at DESC LIMIT 1
) r ON true
"""


VIEWS = {
    "daily_balances": DAILY_BALANCES,
    "monthly_cash_flow": MONTHLY_CASH_FLOW,
    "link_health": LINK_HEALTH,
    "data_freshness": _data_freshness(),
}

MONEY = "integer minor units of currency"
MAJOR = "in major units of currency (CLP 0 decimals; USD, EUR, MXN 2; NULL if unknown)"

COMMENTS: dict[str, tuple[str, dict[str, str]]] = {
    "daily_balances": (
        "One row per account and UTC day, from the day of its first balance snapshot through "
        "today: the balance that held at the end of that day (the last snapshot observed on or "
        "before it, carried forward over days without one)",
        {
            "account_id": "The account",
            "day": "UTC calendar day",
            "currency": "ISO 4217 code of the balances",
            "balance_available": f"Available balance at the end of the day, {MONEY}",
            "balance_current": f"Current (ledger) balance at the end of the day, {MONEY}",
            "balance_limit": f"Credit limit at the end of the day, {MONEY}",
            "balance_available_major": f"balance_available {MAJOR}",
            "balance_current_major": f"balance_current {MAJOR}",
            "balance_limit_major": f"balance_limit {MAJOR}",
            "observed_at": "When the snapshot that held at the end of the day was observed",
        },
    ),
    "monthly_cash_flow": (
        "One row per account, UTC month of post_date and currency: money in, money out and "
        "the count of movements; removed (soft-deleted) movements are excluded, every status "
        "(pending, reversed, ...) is counted",
        {
            "account_id": "The account",
            "month": "First day of the UTC month of post_date",
            "currency": "ISO 4217 code of the amounts",
            "inflow": f"Sum of the positive amounts, {MONEY}",
            "outflow": f"Sum of the negative amounts as a positive magnitude, {MONEY}",
            "net": f"inflow - outflow (the sum of all amounts), {MONEY}",
            "movements": "Number of movements counted",
            "inflow_major": f"inflow {MAJOR}",
            "outflow_major": f"outflow {MAJOR}",
            "net_major": f"net {MAJOR}",
        },
    ),
    "link_health": (
        "One row per link: its status and since when, time spent in login_required over the "
        "last 30 days (720 hours), and how its syncs are going",
        {
            "link_id": "The link",
            "institution_name": "The bank",
            "status": "Latest known status (active, login_required, inactive, ...)",
            "status_since": "When fintoc-sync first observed the current status (no earlier "
            "than its first observation of the link); null if the link has no status",
            "login_required_seconds_30d": "Whole seconds of the last 720 hours the link spent "
            "in login_required, from link_status_transitions (a span that began before the "
            "window is clipped at its start, an open one at now)",
            "last_synced_at": "When fintoc-sync last fetched the link's accounts successfully",
            "last_sync_error": "The last per-link sync error (redacted), null after a success",
            "consecutive_failures": "Finished sync/daemon runs since last_synced_at that recorded "
            "an error for this link (from sync_runs.errors); 0 after a success",
            "deleted_at": "Set when the link disappeared from the API's list",
        },
    ),
    "data_freshness": (
        "One row per data table: when a successful run (sync_runs.status = succeeded) of a "
        "kind that loads it last finished, and how many rows it has now",
        {
            "table_name": "Table of the fintoc schema",
            "last_loaded_at": "finished_at of the latest succeeded run whose kind loads the "
            "table (sync and daemon: everything but backfill_chunks; backfill: movements, "
            "movement_changes, backfill_chunks), whether or not it changed rows",
            "last_loaded_run_id": "sync_runs.id of that run",
            "last_loaded_by": "Kind of that run (sync, daemon or backfill)",
            "rows": "Exact row count now (count(*))",
        },
    ),
}

# The two views of 0001 had a comment but none on their columns.
OLD_VIEW_COLUMNS = {
    "account_balances": {
        "account_id": "The account",
        "link_id": "The link that owns it",
        "link_holder_id": "Tax id of the link's holder",
        "institution_name": "The bank",
        "name": "Standardized account name",
        "official_name": "The bank's name for the product",
        "number": "Account number",
        "type": "Account type (free text)",
        "currency": "ISO 4217 code of the balances",
        "balance_available": f"Available balance, {MONEY}",
        "balance_current": f"Current balance, {MONEY}",
        "balance_limit": f"Credit limit, {MONEY}",
        "balance_current_major": "balance_current in major units (CLP 0 decimals, others 2)",
        "refreshed_at": "When Fintoc last refreshed the account",
        "last_seen_at": "When fintoc-sync last saw the account",
        "link_status": "Status of the link",
        "link_deleted_at": "Set when the link disappeared from the API",
    },
    "link_status_history": {
        "link_id": "The link",
        "holder_id": "Tax id of the link's holder",
        "username": "Bank login name",
        "institution_name": "The bank",
        "from_status": "Status before the change; null for the first observation",
        "to_status": "Status observed",
        "observed_at": "When fintoc-sync observed the change",
    },
}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _comment_columns(view: str, columns: Mapping[str, str | None]) -> None:
    for column, comment in columns.items():
        value = "NULL" if comment is None else _quote(comment)
        op.execute(f"COMMENT ON COLUMN fintoc.{view}.{column} IS {value}")


def upgrade() -> None:
    """Create the helper functions and the views, comment them, grant them to the analyst."""
    for signature, (ddl, comment) in FUNCTIONS.items():
        op.execute(ddl)
        op.execute(f"COMMENT ON FUNCTION fintoc.{signature} IS {_quote(comment)}")
    for name, body in VIEWS.items():
        op.execute(f"CREATE VIEW fintoc.{name} AS {body}")
        view_comment, columns = COMMENTS[name]
        op.execute(f"COMMENT ON VIEW fintoc.{name} IS {_quote(view_comment)}")
        _comment_columns(name, columns)
    for name, old_columns in OLD_VIEW_COLUMNS.items():
        _comment_columns(name, old_columns)
    grant_analyst_read()


def downgrade() -> None:
    """Drop the views and functions; the 0001 views lose their column comments."""
    for name in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS fintoc.{name}")
    for signature in reversed(FUNCTIONS):
        op.execute(f"DROP FUNCTION IF EXISTS fintoc.{signature}")
    for name, old_columns in OLD_VIEW_COLUMNS.items():
        _comment_columns(name, dict.fromkeys(old_columns))
