"""Invariant check: the database against the sandbox's truth at one moment.

``check_invariants(engine, truth)`` reads the ``fintoc`` schema (never writes) and
compares it with ``Sandbox.truth(movements=True)`` (or ``GET /_sandbox/truth``). Call it
after a sync that ran at the truth's clock, i.e. with no ``advance`` in between. What
"equal" means is bounded by what the sync could know:

Links
  * **L-present**: every link the sandbox still has is in ``links``, with equal fields
    (institution, holder, username, mode, active, status, refresh_status, created_at,
    last_time_refreshed) and ``deleted_at`` null. Legacy (2020-shaped) links have no
    ``status``/``active``/``refresh_status``/``last_time_refreshed`` in the API, so null.
  * **L-deleted**: a link deleted in the sandbox is absent (never seen) or has
    ``deleted_at``.
  * **L-unknown**: no row of ``links`` that the sandbox never had.

Accounts (of links the sandbox still has and whose token is registered and valid)
  * **A-present**: every account of the link is in ``accounts`` with equal fields of the
    short form that ``GET /v1/links/{token}`` embeds (balances included);
    no ``accounts`` row that the sandbox does not have.

History (every account and link in the database, sandbox or not)
  * **H-snapshot-dup**: ordered by ``(observed_at, id)``, no two consecutive snapshots of
    an account have equal ``(available, current, limit)``, and no two share an
    ``observed_at``: each observed change is recorded once.
  * **H-snapshot-current**: every account has a snapshot, and its newest one equals the
    balance in ``accounts`` (so, for compared accounts, the sandbox's current balance).
  * **H-transition-chain**: per link, the first transition has ``from_status`` null, each
    next one's ``from_status`` is the previous ``to_status``, ``to_status`` differs from
    ``from_status``, and no two share an ``observed_at``.
  * **H-transition-current**: the newest ``to_status`` equals ``links.status`` when the
    link reports a status (and there is one when it does).

Movements (accounts compared as above)
  * The sync can only know the windows it read: the incremental window
    ``[synced_through - lookback_days, synced_through + 1 day)`` of ``movement_cursors``
    (the last sync read at least that, since the cursor only moves to the day of a
    complete read), and each ``backfill_chunks`` range that ended ``settled_days`` or
    more before the truth's clock (older post dates no longer change in the sandbox:
    late postings land within 8 days and removals within 4 days of that).
  * **M-present**: inside a window, every movement the sandbox has and has not removed
    is in ``movements`` with ``removed_at`` null and equal tracked fields.
  * **M-removed**: inside a window, a movement the sandbox has removed is absent or has
    ``removed_at`` set (nothing the sandbox still has marked removed is shown as live).
  * **M-unknown**: anywhere, no ``movements`` row that the sandbox never had.
  * **M-account**: anywhere, every movement's ``account_id`` is a row of ``accounts``
    (the writer's guarantee since migration 0007 dropped the foreign key).
  * Duplicate movements are impossible by the primary key; a duplicate id across
    accounts would show as M-present mismatch (``account_id`` is compared).

Webhook inbox (``fintoc.webhook_events``; the sandbox's delivery record is
``truth["webhooks"]``: per event id its type, whether it was a forgery, and the HTTP
status of each delivery attempt)
  * **W-token**: always: no stored ``payload`` holds a ``link_token`` key at any depth,
    and no payload or ``error`` contains the text of any link token the sandbox has.
  * **W-stored**: every event delivered with a good signature and answered 2xx is in
    the inbox, with the type the sandbox sent (lost when missing).
  * **W-once**: one row per event id (duplicate), and its ``deliveries`` count is at
    least the number of 2xx answers the event got (each 2xx is a stored delivery; fewer
    means a 2xx that was not stored: lost).
  * **W-forged**: no stored row whose id the sandbox only ever sent with a bad
    signature, and none it never sent at all.
  * **W-token-registered**: for each stored ``link.created``, the token of its link is
    registered in ``link_tokens`` (lost otherwise).
  * **W-drained**: with ``inbox_drained=True`` (the daemon had the time to apply
    everything and stopped), no event is still ``received`` (lost: never applied), and
    none is ``failed`` (every event the sandbox sends is about something it has).

Runs
  * **R-running**: with ``allow_running=False``, no ``sync_runs`` row is still
    ``running`` (a finished or killed run must be closed, ``abandoned`` at worst).

Each violation carries a category used for the chaos summary: ``lost`` (the sandbox has
it, the database does not), ``duplicate`` (a change recorded twice), or ``mismatch``.

CLI: ``python -m sync.sandbox.invariants --database-url … --api-url … --secret-key …`` reads
``/_sandbox/truth?movements=true`` over HTTP, prints the violations, exits 0 or 1.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any

from sqlalchemy import Engine, create_engine, text

#: Post dates at least this many days before the truth's clock no longer change in the sandbox.
SETTLED_DAYS = 13

LINK_FIELDS = (
    "institution_id",
    "holder_id",
    "holder_type",
    "username",
    "mode",
    "active",
    "status",
    "refresh_status",
    "created_at",
    "last_time_refreshed",
)
ACCOUNT_FIELDS = (
    "link_id",
    "name",
    "official_name",
    "number",
    "type",
    "currency",
    "holder_id",
    "holder_name",
    "balance_available",
    "balance_current",
    "balance_limit",
)
# refreshed_at, next_refresh, refresh_status and removed_from_link are only in the full
# form of /v1/accounts; the sync reads the short form embedded in GET /v1/links/{token}.
_LEGACY_ABSENT = ("status", "active", "refresh_status", "last_time_refreshed")


@dataclass(frozen=True)
class Violation:
    """One broken invariant: its rule, category, the row it concerns and what differs."""

    rule: str
    category: str  # "lost", "duplicate" or "mismatch"
    key: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.key}: {self.detail}"


Window = tuple[date, date]  # [since, until) on post_date


# ---------------------------------------------------------------- expected rows (pure)


def _ts(value: object) -> datetime | None:
    """A truth timestamp as the database returns it (aware, UTC)."""
    if not isinstance(value, str):
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def expected_link(payload: dict[str, Any]) -> dict[str, Any]:
    """The links row the sync should hold for a truth link.

    Built here from the raw JSON, not with the sync's parser: a parser bug must fail this
    check, not pass it. Legacy links are served without the keys in ``_LEGACY_ABSENT``.
    """
    get = payload.get
    legacy = bool(get("legacy"))
    row = {f: (None if legacy and f in _LEGACY_ABSENT else get(f)) for f in LINK_FIELDS[1:]}
    row["institution_id"] = (get("institution") or {}).get("id")
    for key in ("created_at", "last_time_refreshed"):
        row[key] = _ts(row[key])
    return row


def expected_account(payload: dict[str, Any]) -> dict[str, Any]:
    """The accounts row the sync should hold for a truth account (from the raw JSON)."""
    balance = payload.get("balance") or {}
    row = {f: payload.get(f) for f in ACCOUNT_FIELDS if not f.startswith("balance_")}
    row |= {f"balance_{k}": balance.get(k) for k in ("available", "current", "limit")}
    return row


def _party(obj: object) -> tuple[object, object, object, object]:
    """(holder_id, holder_name, number, institution id) of a sender/recipient account."""
    if not isinstance(obj, dict):
        return None, None, None, None
    institution = obj.get("institution") or {}
    return obj.get("holder_id"), obj.get("holder_name"), obj.get("number"), institution.get("id")


def expected_movement(payload: dict[str, Any], account_id: str) -> dict[str, Any]:
    """The movement columns the sync should hold for a truth movement (from the raw JSON)."""
    get = payload.get
    row: dict[str, Any] = {
        "account_id": account_id,
        "amount": get("amount"),
        "currency": get("currency"),
        "description": get("description"),
        "post_date": _ts(get("post_date")),
        "transaction_date": _ts(get("transaction_date")),
        "type": get("type"),
        "status": get("status"),
        "pending": get("pending"),
        "reference_id": get("reference_id"),
        "comment": get("comment"),
    }
    for side in ("sender", "recipient"):
        values = _party(get(f"{side}_account"))
        for name, value in zip(_PARTY_FIELDS, values, strict=True):
            row[f"{side}_{name}"] = value
    return row


_PARTY_FIELDS = ("holder_id", "holder_name", "number", "institution_id")
#: The movement columns compared, named here so the check does not lean on the writer.
MOVEMENT_FIELDS = tuple(expected_movement({}, "").keys())


def _fingerprint(token: str) -> str:
    """The vault's documented fingerprint of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def in_windows(day: date, windows: Sequence[Window]) -> bool:
    """Whether a post date falls in one of the windows."""
    return any(since <= day < until for since, until in windows)


def diff_fields(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """`field: db=… api=…` for every field that differs."""
    return [
        f"{k}: db={actual.get(k)!r} api={v!r}" for k, v in expected.items() if actual.get(k) != v
    ]


def _parse_clock(raw: str) -> datetime:
    return datetime.fromisoformat(raw.replace("Z", "+00:00")).astimezone(UTC)


# ---------------------------------------------------------------- database reads


def _rows(engine: Engine, sql: str, **params: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(text(sql), params).mappings()]


# ---------------------------------------------------------------- the checks


def _check_links(engine: Engine, truth: dict[str, Any]) -> list[Violation]:
    out: list[Violation] = []
    db = {r["id"]: r for r in _rows(engine, "SELECT * FROM fintoc.links")}
    known = {link["id"] for link in truth["links"]}
    for payload in truth["links"]:
        lid, row = payload["id"], db.get(payload["id"])
        if payload.get("deleted"):
            if row is not None and row["deleted_at"] is None:
                out.append(Violation("L-deleted", "mismatch", lid, "deleted in the API, not here"))
            continue
        if row is None:
            out.append(Violation("L-present", "lost", lid, "missing from fintoc.links"))
            continue
        diffs = diff_fields(expected_link(payload), row)
        if row["deleted_at"] is not None:
            diffs.append("deleted_at is set but the API still lists the link")
        if diffs:
            out.append(Violation("L-present", "mismatch", lid, "; ".join(diffs)))
    out += [
        Violation("L-unknown", "mismatch", lid, "the API never had this link")
        for lid in sorted(set(db) - known)
    ]
    return out


def compared_links(engine: Engine, truth: dict[str, Any]) -> set[str]:
    """Live links whose token is registered, bound and not invalid: their accounts count."""
    valid = {
        r["fingerprint"]
        for r in _rows(
            engine,
            "SELECT fingerprint FROM fintoc.link_tokens "
            "WHERE link_id IS NOT NULL AND invalid_since IS NULL",
        )
    }
    return {
        link["id"]
        for link in truth["links"]
        if not link.get("deleted")
        and link.get("link_token")
        and _fingerprint(link["link_token"]) in valid
    }


def _check_accounts(engine: Engine, truth: dict[str, Any], links: set[str]) -> list[Violation]:
    out: list[Violation] = []
    db = {r["id"]: r for r in _rows(engine, "SELECT * FROM fintoc.accounts")}
    known = {a["id"] for a in truth["accounts"]}
    for payload in truth["accounts"]:
        if payload["link_id"] not in links:
            continue
        aid, row = payload["id"], db.get(payload["id"])
        if row is None:
            out.append(Violation("A-present", "lost", aid, "missing from fintoc.accounts"))
            continue
        diffs = diff_fields(expected_account(payload), row)
        if diffs:
            out.append(Violation("A-present", "mismatch", aid, "; ".join(diffs)))
    out += [
        Violation("A-unknown", "mismatch", aid, "the API never had this account")
        for aid in sorted(set(db) - known)
    ]
    return out


def _check_snapshots(engine: Engine) -> list[Violation]:
    out: list[Violation] = []
    by_account: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in _rows(
        engine,
        "SELECT account_id, observed_at, balance_available, balance_current, balance_limit "
        "FROM fintoc.balance_snapshots ORDER BY account_id, observed_at, id",
    ):
        by_account[r["account_id"]].append(r)
    keys = ("balance_available", "balance_current", "balance_limit")
    for acc in _rows(
        engine, "SELECT id, balance_available, balance_current, balance_limit FROM fintoc.accounts"
    ):
        history = by_account.get(acc["id"], [])
        if not history:
            out.append(Violation("H-snapshot-current", "lost", acc["id"], "no balance snapshot"))
            continue
        newest = tuple(history[-1][k] for k in keys)
        if newest != tuple(acc[k] for k in keys):
            out.append(
                Violation(
                    "H-snapshot-current",
                    "mismatch",
                    acc["id"],
                    f"newest snapshot {newest} differs from the account row",
                )
            )
        for before, after in pairwise(history):
            when = after["observed_at"].isoformat()
            if all(before[k] == after[k] for k in keys):
                out.append(
                    Violation("H-snapshot-dup", "duplicate", acc["id"], f"unchanged at {when}")
                )
            elif before["observed_at"] == after["observed_at"]:
                out.append(
                    Violation("H-snapshot-dup", "duplicate", acc["id"], f"two rows at {when}")
                )
    return out


def _check_transitions(engine: Engine) -> list[Violation]:
    out: list[Violation] = []
    by_link: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in _rows(
        engine,
        "SELECT link_id, from_status, to_status, observed_at "
        "FROM fintoc.link_status_transitions ORDER BY link_id, observed_at, id",
    ):
        by_link[r["link_id"]].append(r)
    for link in _rows(engine, "SELECT id, status FROM fintoc.links"):
        lid, chain = link["id"], by_link.get(link["id"], [])
        out += _chain_violations(lid, chain)
        newest = chain[-1]["to_status"] if chain else None
        if link["status"] is not None and newest != link["status"]:
            out.append(
                Violation(
                    "H-transition-current",
                    "lost" if newest is None else "mismatch",
                    lid,
                    f"newest transition to {newest!r}, link status {link['status']!r}",
                )
            )
    return out


def _chain_violations(lid: str, chain: Sequence[dict[str, Any]]) -> list[Violation]:
    out: list[Violation] = []
    previous: dict[str, Any] | None = None
    for row in chain:
        expected_from = previous["to_status"] if previous else None
        when = row["observed_at"].isoformat()
        if row["from_status"] != expected_from:
            out.append(
                Violation(
                    "H-transition-chain",
                    "mismatch",
                    lid,
                    f"at {when} from {row['from_status']!r}, previous to {expected_from!r}",
                )
            )
        if row["to_status"] == row["from_status"] or (
            previous is not None and row["to_status"] == previous["to_status"]
        ):
            out.append(
                Violation("H-transition-chain", "duplicate", lid, f"same status again at {when}")
            )
        elif previous is not None and previous["observed_at"] == row["observed_at"]:
            out.append(Violation("H-transition-chain", "duplicate", lid, f"two rows at {when}"))
        previous = row
    return out


def movement_windows(
    engine: Engine,
    accounts: Iterable[str],
    *,
    lookback_days: int,
    clock: datetime,
    settled_days: int = SETTLED_DAYS,
) -> dict[str, list[Window]]:
    """Per account, the post-date windows the sync has read completely (see the docstring)."""
    wanted = set(accounts)
    windows: dict[str, list[Window]] = defaultdict(list)
    for r in _rows(engine, "SELECT account_id, synced_through FROM fintoc.movement_cursors"):
        if r["account_id"] in wanted:
            through: date = r["synced_through"]
            day = timedelta(days=1)
            windows[r["account_id"]].append((through - lookback_days * day, through + day))
    settled = clock.date() - timedelta(days=settled_days)
    for r in _rows(engine, "SELECT account_id, since, until FROM fintoc.backfill_chunks"):
        if r["account_id"] in wanted and r["until"] <= settled:
            windows[r["account_id"]].append((r["since"], r["until"]))
    return dict(windows)


def _check_movements(
    engine: Engine,
    truth: dict[str, Any],
    links: set[str],
    *,
    lookback_days: int,
    settled_days: int,
) -> list[Violation]:
    out: list[Violation] = []
    truth_movs: dict[str, list[dict[str, Any]]] = truth.get("movements") or {}
    all_ids = {m["id"] for items in truth_movs.values() for m in items}
    accounts = [a["id"] for a in truth["accounts"] if a["link_id"] in links]
    windows = movement_windows(
        engine,
        accounts,
        lookback_days=lookback_days,
        clock=_parse_clock(truth["clock"]),
        settled_days=settled_days,
    )
    cols = ", ".join(MOVEMENT_FIELDS)
    db = {
        r["id"]: r
        for r in _rows(engine, f"SELECT id, {cols}, removed_at FROM fintoc.movements")  # noqa: S608 (constant names)
    }
    out += [
        Violation("M-account", "mismatch", r["id"], f"account {r['account_id']} is not stored")
        for r in _rows(
            engine,
            "SELECT m.id, m.account_id FROM fintoc.movements m "
            "WHERE NOT EXISTS (SELECT 1 FROM fintoc.accounts a WHERE a.id = m.account_id)",
        )
    ]
    if truth_movs:
        out += [
            Violation("M-unknown", "mismatch", mid, "the API never had this movement")
            for mid in sorted(set(db) - all_ids)
        ]
    for aid in accounts:
        spans = windows.get(aid, [])
        for payload in truth_movs.get(aid, []):
            out += _check_movement(payload, aid, spans, db.get(payload["id"]))
    return out


def _check_movement(
    payload: dict[str, Any], account_id: str, spans: Sequence[Window], row: dict[str, Any] | None
) -> list[Violation]:
    mid = payload["id"]
    expected = expected_movement(payload, account_id)
    if not in_windows(expected["post_date"].date(), spans):
        return []
    if payload.get("removed"):
        if row is not None and row["removed_at"] is None:
            return [Violation("M-removed", "mismatch", mid, "removed in the API, live here")]
        return []
    if row is None:
        return [
            Violation("M-present", "lost", mid, f"missing from fintoc.movements ({account_id})")
        ]
    diffs = diff_fields(expected, row)
    if row["removed_at"] is not None:
        diffs.append("removed_at is set but the API still returns it")
    return [Violation("M-present", "mismatch", mid, "; ".join(diffs))] if diffs else []


def _has_link_token_key(value: object) -> bool:
    if isinstance(value, dict):
        return "link_token" in value or any(_has_link_token_key(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_link_token_key(v) for v in value)
    return False


def _check_inbox(engine: Engine, truth: dict[str, Any], *, drained: bool) -> list[Violation]:
    out: list[Violation] = []
    rows = _rows(
        engine,
        "SELECT id, type, status, deliveries, payload, error, payload::text AS raw "
        "FROM fintoc.webhook_events",
    )
    tokens = [link["link_token"] for link in truth["links"] if link.get("link_token")]
    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_id[row["id"]].append(row)
        text_seen = (row["raw"] or "") + (row["error"] or "")
        if _has_link_token_key(row["payload"]) or any(t in text_seen for t in tokens):
            out.append(Violation("W-token", "mismatch", row["id"], "a link token is stored"))
    for eid, copies in by_id.items():
        if len(copies) > 1:
            out.append(Violation("W-once", "duplicate", eid, f"{len(copies)} rows"))
    out += _check_deliveries(truth.get("webhooks"), by_id)
    out += _check_created_tokens(engine, truth, rows)
    if drained:
        for row in rows:
            if row["status"] == "received":
                out.append(Violation("W-drained", "lost", row["id"], f"{row['type']} unapplied"))
            elif row["status"] == "failed":
                detail = f"{row['type']} failed: {(row['error'] or '')[:200]}"
                out.append(Violation("W-drained", "mismatch", row["id"], detail))
    return out


def _check_deliveries(
    report: list[dict[str, Any]] | None, by_id: dict[str, list[dict[str, Any]]]
) -> list[Violation]:
    if report is None:  # the sandbox delivered nothing: nothing to compare
        return []
    out: list[Violation] = []
    sent = {e["id"]: e for e in report}
    for event in report:
        eid, stored = event["id"], by_id.get(event["id"])
        acked = sum(1 for status in event["answers"] if status is not None and 200 <= status < 300)
        if event["forged"]:
            if stored:
                out.append(Violation("W-forged", "mismatch", eid, "a forged event is stored"))
            continue
        if not acked:
            continue
        if not stored:
            out.append(Violation("W-stored", "lost", eid, f"{event['type']} got 2xx, not stored"))
            continue
        row = stored[0]
        if row["type"] != event["type"]:
            detail = f"type: db={row['type']!r} sent={event['type']!r}"
            out.append(Violation("W-stored", "mismatch", eid, detail))
        if (row["deliveries"] or 0) < acked:
            detail = f"{acked} answers 2xx, {row['deliveries']} deliveries stored"
            out.append(Violation("W-once", "lost", eid, detail))
    out += [
        Violation("W-forged", "mismatch", eid, "the sandbox never sent this event")
        for eid in sorted(set(by_id) - set(sent))
    ]
    return out


def _check_created_tokens(
    engine: Engine, truth: dict[str, Any], rows: Sequence[dict[str, Any]]
) -> list[Violation]:
    created = [r for r in rows if r["type"] == "link.created"]
    if not created:
        return []
    registered = {
        r["fingerprint"] for r in _rows(engine, "SELECT fingerprint FROM fintoc.link_tokens")
    }
    token_of = {link["id"]: link.get("link_token") for link in truth["links"]}
    out: list[Violation] = []
    for row in created:
        data = (row["payload"] or {}).get("data") or {}
        token = token_of.get(data.get("id")) if isinstance(data, dict) else None
        if token and _fingerprint(token) not in registered:
            detail = f"the token of {data.get('id')} is not in link_tokens"
            out.append(Violation("W-token-registered", "lost", row["id"], detail))
    return out


def _check_runs(engine: Engine) -> list[Violation]:
    return [
        Violation("R-running", "mismatch", f"sync_runs {r['id']}", f"{r['kind']} still running")
        for r in _rows(engine, "SELECT id, kind FROM fintoc.sync_runs WHERE status = 'running'")
    ]


def check_invariants(
    engine: Engine,
    truth: dict[str, Any],
    *,
    lookback_days: int = 7,
    settled_days: int = SETTLED_DAYS,
    allow_running: bool = True,
    inbox_drained: bool = False,
) -> list[Violation]:
    """Every rule of the module docstring; an empty list means the database is consistent.

    ``lookback_days`` must be the sync's ``FINTOC_SYNC_LOOKBACK_DAYS``; ``truth`` must come
    from ``truth(movements=True)`` for movements to be compared. ``inbox_drained``: every
    webhook event should have been applied by now (W-drained).
    """
    links = compared_links(engine, truth)
    violations = _check_links(engine, truth)
    violations += _check_accounts(engine, truth, links)
    violations += _check_snapshots(engine)
    violations += _check_transitions(engine)
    violations += _check_movements(
        engine, truth, links, lookback_days=lookback_days, settled_days=settled_days
    )
    violations += _check_inbox(engine, truth, drained=inbox_drained)
    if not allow_running:
        violations += _check_runs(engine)
    return violations


def count_by_category(violations: Iterable[Violation]) -> dict[str, int]:
    """How many violations of each category (``lost``, ``duplicate``, ``mismatch``)."""
    counts = {"lost": 0, "duplicate": 0, "mismatch": 0}
    for v in violations:
        counts[v.category] = counts.get(v.category, 0) + 1
    return counts


# ---------------------------------------------------------------- the command


def fetch_truth(api_url: str, secret_key: str, *, timeout: float = 60.0) -> dict[str, Any]:
    """``GET /_sandbox/truth?movements=true`` from a running sandbox."""
    import httpx

    response = httpx.get(
        api_url.rstrip("/") + "/_sandbox/truth",
        params={"movements": "true"},
        headers={"Authorization": secret_key},
        timeout=timeout,
    )
    response.raise_for_status()
    body = response.json()
    assert isinstance(body, dict)
    return body


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sync.sandbox.invariants``: 0 when every invariant holds, 1 otherwise."""
    parser = argparse.ArgumentParser(
        prog="python -m sync.sandbox.invariants",
        description="Compare the fintoc schema with a sandbox's truth.",
    )
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--api-url", default=os.environ.get("FINTOC_API_URL"))
    parser.add_argument("--secret-key", default=os.environ.get("FINTOC_SECRET_KEY"))
    parser.add_argument(
        "--lookback-days", type=int, default=int(os.environ.get("FINTOC_SYNC_LOOKBACK_DAYS", "7"))
    )
    parser.add_argument(
        "--no-running", action="store_true", help="a sync_runs row still running is a violation"
    )
    parser.add_argument(
        "--drained",
        action="store_true",
        help="a webhook event still received or failed is a violation",
    )
    args = parser.parse_args(argv)
    if not (args.database_url and args.api_url and args.secret_key):
        print("need --database-url, --api-url and --secret-key (or their env)", file=sys.stderr)
        return 2
    engine = create_engine(_psycopg_url(args.database_url), pool_size=1)
    try:
        truth = fetch_truth(args.api_url, args.secret_key)
        violations = check_invariants(
            engine,
            truth,
            lookback_days=args.lookback_days,
            allow_running=not args.no_running,
            inbox_drained=args.drained,
        )
    finally:
        engine.dispose()
    for violation in violations:
        print(violation)
    counts = count_by_category(violations)
    print(
        f"{len(violations)} violation(s): {counts['lost']} lost, "
        f"{counts['duplicate']} duplicate, {counts['mismatch']} mismatch"
    )
    return 1 if violations else 0


def _psycopg_url(url: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


if __name__ == "__main__":
    sys.exit(main())
