"""`fintoc-sync status [--json]`: what an operator asks first — did the last runs work,
which links fail now, how fresh is each table, are webhook events waiting.

Read-only, from the database alone (no API call, no secret key needed). Exit 0 when the
latest run succeeded and no link is failing, 1 otherwise, 2 when the database is not
reachable or not migrated (the CLI maps those).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

from sqlalchemy import Engine, func, select, text

from models import Institution, Link, LinkToken, SyncRun
from sync.app.style import paint, wants_colour

RECENT_RUNS = 5
#: table → the sync_runs count column that says a run wrote it
WRITERS = {
    "links": "links_synced",
    "accounts": "accounts_upserted",
    "balance_snapshots": "snapshots_written",
    "link_status_transitions": "transitions_written",
    "movements": "movements_upserted",
}
OK_STATUSES = ("succeeded", "partial")


@dataclass
class Status:
    """Everything `status` shows, JSON-able."""

    runs: list[dict[str, Any]]
    failing_links: list[dict[str, Any]]
    rejected_tokens: int
    unmatched_tokens: int
    freshness: dict[str, str | None]
    pending_webhook_events: int | None

    @property
    def healthy(self) -> bool:
        """The latest run succeeded and no link is failing."""
        latest_ok = bool(self.runs) and self.runs[0]["status"] == "succeeded"
        return latest_ok and not self.failing_links

    def as_json(self) -> dict[str, Any]:
        """The document `status --json` prints."""
        return {
            "healthy": self.healthy,
            "runs": self.runs,
            "failing_links": self.failing_links,
            "rejected_tokens": self.rejected_tokens,
            "unmatched_tokens": self.unmatched_tokens,
            "freshness": self.freshness,
            "pending_webhook_events": self.pending_webhook_events,
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def utc_text(moment: datetime | None) -> str:
    """``2026-12-03 09:50 UTC`` (or ``never``): the timezone is always shown."""
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "never"


def collect(engine: Engine) -> Status:
    """Read the status from the database."""
    with engine.connect() as conn:
        runs = [
            {
                "id": r.id,
                "kind": r.kind,
                "status": r.status,
                "started_at": _iso(r.started_at),
                "finished_at": _iso(r.finished_at),
                "links_synced": r.links_synced,
                "links_failed": r.links_failed,
                "error_summary": r.error_summary,
            }
            for r in conn.execute(select(SyncRun).order_by(SyncRun.id.desc()).limit(RECENT_RUNS))
        ]
        failing = [
            {"link_id": lid, "institution": inst, "status": status, "error": error}
            for lid, inst, status, error in conn.execute(
                select(Link.id, Institution.name, Link.status, Link.last_sync_error)
                .outerjoin(Institution, Institution.id == Link.institution_id)
                .where(Link.last_sync_error.is_not(None), Link.deleted_at.is_(None))
                .order_by(Link.id)
            )
        ]
        rejected = conn.scalar(
            select(func.count()).select_from(LinkToken).where(LinkToken.invalid_since.is_not(None))
        )
        unmatched = conn.scalar(
            select(func.count()).select_from(LinkToken).where(LinkToken.link_id.is_(None))
        )
        freshness = {
            table: _iso(
                conn.scalar(
                    select(func.max(SyncRun.finished_at)).where(
                        SyncRun.status.in_(OK_STATUSES), getattr(SyncRun, column) > 0
                    )
                )
            )
            for table, column in WRITERS.items()
        }
        pending = _pending_webhook_events(conn)
    return Status(runs, failing, rejected or 0, unmatched or 0, freshness, pending)


def _pending_webhook_events(conn: Any) -> int | None:
    """Events received but not processed yet; None when there is no webhook table."""
    if conn.scalar(text("SELECT to_regclass('fintoc.webhook_events')")) is None:
        return None
    return int(
        conn.scalar(text("SELECT count(*) FROM fintoc.webhook_events WHERE processed_at IS NULL"))
        or 0
    )


def print_status(status: Status, out: TextIO) -> None:
    """The human form: runs, failing links, tokens, freshness, webhook events."""
    colour = wants_colour(out)
    print(paint("last runs", "bold", colour), file=out)
    if not status.runs:
        print("  none yet: run `fintoc-sync sync`", file=out)
    for run in status.runs:
        good = run["status"] == "succeeded"
        shown = paint(run["status"], "green" if good else "red", colour)
        started = datetime.fromisoformat(run["started_at"])
        line = (
            f"  #{run['id']:<5} {run['kind']:<8} {utc_text(started)}  {shown:<10} "
            f"{run['links_synced']} synced, {run['links_failed']} failed"
        )
        print(line.rstrip(), file=out)
        if run["error_summary"] and not good:
            print(f"         {run['error_summary'][:200]}", file=out)
    print(paint("\nlinks failing now", "bold", colour), file=out)
    if not status.failing_links:
        print("  none", file=out)
    for link in status.failing_links:
        print(f"  {link['link_id']}  {link['institution'] or '?'}: {link['error']}", file=out)
    if status.rejected_tokens:
        print(f"  {status.rejected_tokens} token(s) the API rejects (unknown or revoked)", file=out)
    if status.unmatched_tokens:
        print(f"  {status.unmatched_tokens} token(s) not matched to a link yet", file=out)
    print(paint("\nlatest successful write (UTC)", "bold", colour), file=out)
    for table, when in status.freshness.items():
        shown = utc_text(datetime.fromisoformat(when)) if when else "never"
        print(f"  {table:<24} {shown}", file=out)
    if status.pending_webhook_events is not None:
        print(f"\npending webhook events: {status.pending_webhook_events}", file=out)


def run_status(engine: Engine, out: TextIO, *, as_json: bool = False) -> int:
    """`fintoc-sync status`: 0 healthy, 1 the latest run did not succeed or a link fails."""
    status = collect(engine)
    if as_json:
        print(json.dumps(status.as_json(), indent=2), file=out)
    else:
        print_status(status, out)
    return 0 if status.healthy else 1
