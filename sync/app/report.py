"""`fintoc-sync report --out FILE.html`: one self-contained HTML page about the data.

Balance history per account (step-wise, one chart per currency), each link's status
timeline, money in and out per month, and the freshness of every table, read from the
analyst views in one consistent snapshot (REPEATABLE READ). The page opens with no
network: no script, no stylesheet or font to fetch; the charts are inline SVG
(sync/app/charts.py).

Every string from the database (names, ids, statuses, errors: all from the API) is
HTML-escaped here, in `_e`, and nowhere else builds markup from data.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, text

from sync.app import charts
from sync.errors import ConfigError

DEFAULT_DAYS = 90
DEFAULT_MAX_ACCOUNTS = 8
DEFAULT_MAX_LINKS = 30
CASH_FLOW_MONTHS = 12
ERROR_CHARS = 200

_ACCOUNTS = """
WITH ranked AS (
    SELECT a.id, a.name, coalesce(a.currency, '?') AS currency, i.name AS institution,
           coalesce(fintoc.to_major(a.balance_current, a.currency), a.balance_current) AS balance,
           row_number() OVER (PARTITION BY coalesce(a.currency, '?')
                              ORDER BY abs(a.balance_current) DESC NULLS LAST, a.id) AS rank,
           count(*) OVER (PARTITION BY coalesce(a.currency, '?')) AS of_currency
    FROM fintoc.accounts a
    JOIN fintoc.links l ON l.id = a.link_id
    LEFT JOIN fintoc.institutions i ON i.id = l.institution_id
    WHERE EXISTS (SELECT 1 FROM fintoc.balance_snapshots s WHERE s.account_id = a.id)
)
SELECT id, name, currency, institution, balance, of_currency
FROM ranked WHERE rank <= :n ORDER BY currency, rank
"""
_BALANCES = """
SELECT account_id, day, coalesce(balance_current_major, balance_current)
FROM fintoc.daily_balances
WHERE account_id = ANY (:ids) AND day >= :since
ORDER BY account_id, day
"""
# Every month of every currency: one pass over the view (the last 12 months with
# movements are kept in Python; asking the view for its latest month first would
# aggregate every movement twice).
_CASH_FLOW = """
SELECT f.currency, f.month,
       coalesce(sum(f.inflow_major), sum(f.inflow)), coalesce(sum(f.outflow_major), sum(f.outflow)),
       sum(f.movements)
FROM fintoc.monthly_cash_flow f
GROUP BY f.currency, f.month
ORDER BY f.currency NULLS LAST, f.month
"""
_LINKS = """
SELECT link_id, institution_name, status, status_since, login_required_seconds_30d,
       consecutive_failures, last_synced_at, last_sync_error, count(*) OVER () AS total
FROM fintoc.link_health
WHERE deleted_at IS NULL
ORDER BY status IS DISTINCT FROM 'active' DESC, status_since DESC NULLS LAST, link_id
LIMIT :n
"""
_TRANSITIONS = """
SELECT link_id, to_status, observed_at,
       lead(observed_at) OVER (PARTITION BY link_id ORDER BY observed_at, id)
FROM fintoc.link_status_transitions
WHERE link_id = ANY (:ids)
ORDER BY link_id, observed_at, id
"""
_FRESHNESS = """
SELECT table_name, last_loaded_at, last_loaded_by, rows FROM fintoc.data_freshness
ORDER BY table_name
"""


@dataclass(frozen=True)
class Options:
    """How much the report shows."""

    days: int = DEFAULT_DAYS
    max_accounts: int = DEFAULT_MAX_ACCOUNTS
    max_links: int = DEFAULT_MAX_LINKS


@dataclass
class Summary:
    """What `write_report` wrote, for the command's one line."""

    path: Path
    charts: int
    accounts: int
    links: int
    empty: bool = False


def _e(value: object) -> str:
    """Any value as escaped HTML text ('' for NULL)."""
    return "" if value is None else html.escape(str(value), quote=True)


def _ts(moment: datetime | None) -> str:
    return "never" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _num(value: Decimal | int | float | None) -> float:
    return 0.0 if value is None else float(value)


def _amount(value: float, currency: str) -> str:
    decimals = 0 if currency == "CLP" else 2
    return f"{value:,.{decimals}f} {currency}"


# ----------------------------------------------------------------------------- sections


def _balances(conn: Connection, now: datetime, opts: Options) -> tuple[list[str], int, int]:
    """One chart per currency; (html sections, charts, accounts charted)."""
    accounts = conn.execute(text(_ACCOUNTS), {"n": opts.max_accounts}).all()
    if not accounts:
        return [_empty_section("No balance has been observed yet.")], 0, 0
    since = now.astimezone(UTC).date() - timedelta(days=opts.days - 1)
    points: dict[str, tuple[list[date], list[float]]] = {}
    ids = [row.id for row in accounts]
    for account_id, day, value in conn.execute(text(_BALANCES), {"ids": ids, "since": since}):
        days, values = points.setdefault(account_id, ([], []))
        days.append(day)
        values.append(_num(value))
    sections: list[str] = []
    by_currency: dict[str, list[Any]] = {}
    for row in accounts:
        by_currency.setdefault(row.currency, []).append(row)
    for n, (currency, rows) in enumerate(by_currency.items()):
        series, legend = [], []
        for i, row in enumerate(rows):
            colour = charts.PALETTE[i % len(charts.PALETTE)]
            days, values = points.get(row.id, ([], []))
            if days:  # one more step: the last day is drawn a day wide, like the others
                series.append(
                    charts.Series(colour, [*days, days[-1] + timedelta(1)], [*values, values[-1]])
                )
            legend.append(_legend_row(colour, row, _amount(_num(row.balance), currency)))
        svg = charts.balance_chart(f"balances-{n}", series, currency)
        total = rows[0].of_currency
        note = (
            f"The {len(rows)} largest of {total:,} {currency} accounts by current balance "
            f"(--max-accounts shows more)."
            if total > len(rows)
            else f"All {total} {currency} account(s)."
        )
        sections.append(
            f'<section class="card"><h3>{_e(currency)}</h3><p class="note">{_e(note)} '
            f"End-of-day balance (fintoc.daily_balances), last {opts.days} days.</p>"
            f'<figure>{svg}</figure><table class="legend"><tr><th></th><th>account</th>'
            f"<th>bank</th><th>id</th><th>current balance</th></tr>{''.join(legend)}</table>"
            "</section>"
        )
    return sections, len(by_currency), len(accounts)


def _legend_row(colour: str, row: Any, balance: str) -> str:
    return (
        f'<tr><td><span class="swatch" style="background:{colour}"></span></td>'
        f"<td>{_e(row.name)}</td><td>{_e(row.institution)}</td><td><code>{_e(row.id)}</code>"
        f'</td><td class="num">{_e(balance)}</td></tr>'
    )


def _cash_flow(conn: Connection) -> tuple[list[str], int]:
    """One chart per currency of the last 12 months that have movements."""
    rows = conn.execute(text(_CASH_FLOW)).all()
    if not rows:
        return [_empty_section("No movements have been loaded yet.")], 0
    by_currency: dict[str, list[Any]] = {}
    for row in rows:
        by_currency.setdefault(row[0] or "?", []).append(row)
    sections = []
    for n, (currency, every_month) in enumerate(by_currency.items()):
        months = every_month[-CASH_FLOW_MONTHS:]
        svg = charts.cash_flow_chart(
            f"cash-flow-{n}",
            [m[1] for m in months],
            [_num(m[2]) for m in months],
            [_num(m[3]) for m in months],
            currency,
        )
        count = sum(int(m[4]) for m in months)
        sections.append(
            f'<section class="card"><h3>{_e(currency)}</h3><p class="note">Every account, '
            f"{len(months)} month(s) up to {months[-1][1]:%B %Y}, {count:,} movements "
            "(fintoc.monthly_cash_flow; removed movements excluded).</p>"
            f"<figure>{svg}</figure></section>"
        )
    return sections, len(by_currency)


def _links(conn: Connection, now: datetime, opts: Options) -> tuple[list[str], int]:
    """The status timeline of the links that matter most, and a table of them."""
    links = conn.execute(text(_LINKS), {"n": opts.max_links}).all()
    if not links:
        return [_empty_section("No link has been listed yet.")], 0
    ids = [row.link_id for row in links]
    transitions = conn.execute(text(_TRANSITIONS), {"ids": ids}).all()
    # The window: the last --days days, or less when the history is younger.
    first = min((t.observed_at for t in transitions), default=now)
    start = max(now - timedelta(days=opts.days), first - (now - first) / 20)
    spans: dict[str, list[charts.Span]] = {}
    for link_id, status, began, ended in transitions:
        end = min(ended or now, now)
        if end > start:
            spans.setdefault(link_id, []).append(charts.Span(max(began, start), end, status or "?"))
    labels = [f"{row.institution_name or '?'} · {row.link_id}" for row in links]
    svg = charts.status_timeline(
        "link-status", labels, [spans.get(i, []) for i in ids], (start, now)
    )
    total = links[0].total
    shown = (
        f"{len(links)} of {total:,} links: those not active first, then the latest to change "
        "status (--max-links shows more)."
        if total > len(links)
        else f"All {total} link(s) the API lists now."
    )
    table = "".join(_link_row(row) for row in links)
    return [
        f'<section class="card"><p class="note">{_e(shown)} Status from '
        f"fintoc.link_status_transitions, last {opts.days} days.</p><figure>{svg}</figure>"
        "<table><tr><th>link</th><th>bank</th><th>status</th><th>since</th>"
        "<th>login required, 30 days</th><th>failed syncs in a row</th><th>last synced</th>"
        f"<th>last error</th></tr>{table}</table></section>"
    ], 1


def _link_row(row: Any) -> str:
    hours = int(row.login_required_seconds_30d or 0) / 3600
    status = row.status or "?"
    colour = charts.status_colour(status)
    error = charts.short(row.last_sync_error, ERROR_CHARS) if row.last_sync_error else None
    return (
        f"<tr><td><code>{_e(row.link_id)}</code></td><td>{_e(row.institution_name)}</td>"
        f'<td><span class="swatch" style="background:{colour}"></span>{_e(status)}</td>'
        f'<td>{_e(_ts(row.status_since))}</td><td class="num">{hours:,.1f} h</td>'
        f'<td class="num">{int(row.consecutive_failures or 0)}</td>'
        f"<td>{_e(_ts(row.last_synced_at))}</td><td>{_e(error)}</td></tr>"
    )


def _freshness(conn: Connection) -> str:
    rows = "".join(
        f"<tr><td><code>{_e(name)}</code></td><td>{_e(_ts(loaded))}</td><td>{_e(kind)}</td>"
        f'<td class="num">{int(count):,}</td></tr>'
        for name, loaded, kind, count in conn.execute(text(_FRESHNESS))
    )
    return (
        '<section class="card"><p class="note">The latest successful run that loads each '
        "table (fintoc.data_freshness).</p><table><tr><th>table</th><th>last loaded</th>"
        f"<th>by</th><th>rows</th></tr>{rows}</table></section>"
    )


def _empty_section(message: str) -> str:
    return f'<section class="card"><p class="empty">{_e(message)}</p></section>'


# ----------------------------------------------------------------------------- the page

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
margin:0;background:#f6f7f9;color:#1f2328}
header{background:#1f2a44;color:#fff;padding:18px 32px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;opacity:.8;font-size:13px}
main{max-width:1000px;margin:0 auto;padding:8px 24px 40px}
h2{font-size:18px;margin:28px 0 8px}h3{margin:0 0 4px;font-size:15px}
.card{background:#fff;border:1px solid #e1e4e8;border-radius:8px;padding:14px 18px;margin:10px 0}
.note{color:#57606a;font-size:13px;margin:0 0 8px}.empty{font-size:15px;margin:6px 0}
figure{margin:0}svg.chart{width:100%;height:auto;display:block}
table{border-collapse:collapse;font-size:13px;width:100%;margin-top:8px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eaecef;vertical-align:top;
overflow-wrap:anywhere}th{color:#57606a;font-weight:600}td.num{text-align:right;white-space:nowrap}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px}
code{font-size:12px}
"""


def _page(generated: datetime, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # No network, ever: nothing in this page may load from anywhere.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">"
        f"<title>fintoc-sync report</title><style>{CSS}</style></head><body>"
        f"<header><h1>fintoc-sync report</h1><p>Generated {_e(_ts(generated))} from the "
        "schema <code>fintoc</code>.</p></header>"
        f"<main>{body}</main></body></html>\n"
    )


def render(engine: Engine, opts: Options | None = None) -> tuple[str, Summary]:
    """The report page and what it holds, read in one snapshot of the database."""
    opts = opts or Options()
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
        now: datetime = conn.scalar(text("SELECT now()"))
        links = conn.scalar(text("SELECT count(*) FROM fintoc.links")) or 0
        accounts = conn.scalar(text("SELECT count(*) FROM fintoc.accounts")) or 0
        summary = Summary(Path(), 0, 0, 0)
        if not links and not accounts:
            summary.empty = True
            body = (
                '<section class="card"><h2>No data yet</h2><p class="empty">The database '
                "has no links or accounts. Run <code>fintoc-sync sync</code> (or try "
                "<code>fintoc-sync demo</code>), then make the report again.</p></section>"
            )
            return _page(now, body), summary
        balance_sections, balance_charts, charted = _balances(conn, now, opts)
        link_sections, link_charts = _links(conn, now, opts)
        flow_sections, flow_charts = _cash_flow(conn)
        freshness = _freshness(conn)
    body = (
        f'<p class="note">{links:,} link(s), {accounts:,} account(s).</p>'
        "<h2>Balance history</h2>"
        + "".join(balance_sections)
        + "<h2>Link status</h2>"
        + "".join(link_sections)
        + "<h2>Cash flow per month</h2>"
        + "".join(flow_sections)
        + "<h2>Data freshness</h2>"
        + freshness
    )
    summary.charts = balance_charts + link_charts + flow_charts
    summary.accounts, summary.links = charted, min(links, opts.max_links)
    return _page(now, body), summary


def write_report(engine: Engine, path: Path, opts: Options | None = None) -> Summary:
    """Render the report and write it to path atomically (a reader never sees half)."""
    page, summary = render(engine, opts)
    path = path.expanduser()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write the report to {path}: {exc.strerror}") from None
    summary.path = path.resolve()
    return summary


def describe(summary: Summary) -> str:
    """The line the command prints."""
    if summary.empty:
        return f"report written to {summary.path} (no data yet: run `fintoc-sync sync` first)"
    return (
        f"report written to {summary.path}: {summary.charts} chart(s), "
        f"{summary.accounts} account(s), {summary.links} link(s); open it in a browser"
    )
