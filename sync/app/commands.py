"""What the CLI commands do, apart from argument parsing: wiring and reporting."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, TextIO

from sqlalchemy import Engine, func, select

from models import Account, Institution, Link, LinkToken
from sync.app.progress import Progress, SyncProgress
from sync.app.wiring import Wiring
from sync.errors import ConfigError
from sync.run.context import utc_now
from sync.store import vault
from sync.store.db import make_sessionmaker, wait_sync_lock

if TYPE_CHECKING:
    from sync.run.pipeline import SyncReport

log = logging.getLogger(__name__)


def run_sync_once(engine: Engine, wiring: Wiring, *, link_id: str | None = None) -> SyncReport:
    """`fintoc-sync sync`: wait for other syncs, then one cycle."""
    require_vault_key_if_tokens(engine, wiring)
    with make_sessionmaker(engine)() as session:
        registered = session.scalar(select(func.count()).select_from(LinkToken)) or 0
    progress = SyncProgress(registered, stream=sys.stderr)
    with wiring.client() as client:
        hook = progress.wrap(wiring.movement_sync(client))
        pipeline = wiring.pipeline(engine, client, account_hook=hook)
        with wait_sync_lock(engine):
            try:
                return pipeline.run(kind="sync", link_id=link_id)
            finally:
                progress.finish()


def require_vault_key_if_tokens(engine: Engine, wiring: Wiring) -> None:
    """No encryption key while tokens are stored is a configuration error, not a warning:
    under cron a `sync` that quietly skips every account is a silent gap."""
    if wiring.settings.encryption_key is not None:
        return
    with make_sessionmaker(engine)() as session:
        stored = session.scalar(select(func.count()).select_from(LinkToken)) or 0
    if stored:
        raise ConfigError(
            f"FINTOC_SYNC_ENCRYPTION_KEY is not set but {stored} link token(s) are stored: "
            "without it their accounts cannot be synced; set the key they were stored with"
        )
    log.warning("FINTOC_SYNC_ENCRYPTION_KEY is unset: only the link list is synced")


def print_report_json(report: SyncReport, out: TextIO) -> None:
    """`sync --json`: the run's outcome as one JSON object (tokens never appear)."""
    from sync.run.pipeline import failed_subjects

    doc = {
        "run_id": report.run_id,
        "status": report.status,
        "exit_code": report.exit_code,
        "links_total": report.links_total,
        "links_synced": report.links_synced,
        "links_failed": len(failed_subjects(report.failures)),
        "counts": report.counts,
        "failures": [f.as_json() | {"subject": f.subject()} for f in report.failures],
    }
    print(json.dumps(doc, indent=2), file=out)


def print_report(report: SyncReport, out: TextIO) -> None:
    """A short human summary of a run."""
    from sync.run.pipeline import failed_subjects

    c = report.counts
    print(
        f"run {report.run_id}: {report.status} — {report.links_synced} link(s) synced, "
        f"{len(failed_subjects(report.failures))} failed; "
        f"{c.get('accounts_upserted', 0)} account rows written, "
        f"{c.get('snapshots_written', 0)} balance snapshots, "
        f"{c.get('transitions_written', 0)} status transitions, "
        f"{c.get('movements_upserted', 0)} movements written",
        file=out,
    )
    for failure in report.failures:
        print(f"  failed: {failure.subject()}: {failure.message}", file=out)


# ------------------------------------------------------------------------- links


def links_add(
    engine: Engine, wiring: Wiring, raw: list[str], out: TextIO, *, verify: bool = False
) -> int:
    """Register tokens encrypted; says how many were new, never shows them.

    Refused, with nothing stored: a token that cannot be one (an API key, whitespace, an
    absurd length) and an encryption key that cannot decrypt the tokens already stored.
    """
    from sync.app import links

    key = wiring.settings.require_encryption_key()
    cipher = vault.make_cipher(key)
    tokens = list(dict.fromkeys(t.strip() for t in raw if t.strip()))
    wiring.register_secrets(tokens)
    links.require_good_shapes(tokens)
    links.require_matching_key(engine, key)
    good = links.verify(wiring, tokens, out) if verify else tokens
    with make_sessionmaker(engine).begin() as session:
        added = vault.add_tokens(session, cipher, good, utc_now())
    print(
        f"registered {added} new link token(s); {len(good) - added} already known"
        f" (encryption key {vault.key_fingerprint(key)})",
        file=out,
    )
    if len(good) < len(tokens):
        print(f"{len(tokens) - len(good)} token(s) refused by the API, not registered", file=out)
        return 1
    return 0


def links_list(engine: Engine, out: TextIO, *, as_json: bool = False) -> int:
    """Links with status, accounts, last sync (UTC) and whether a token is registered."""
    accounts = select(Account.link_id, func.count().label("n")).group_by(Account.link_id).subquery()
    query = (
        select(
            Link.id,
            Institution.name,
            Link.holder_type,
            Link.status,
            Link.active,
            func.coalesce(accounts.c.n, 0),
            Link.last_synced_at,
            Link.deleted_at,
            LinkToken.fingerprint.is_not(None),
            Link.last_sync_error,
        )
        .outerjoin(Institution, Institution.id == Link.institution_id)
        .outerjoin(accounts, accounts.c.link_id == Link.id)
        .outerjoin(LinkToken, LinkToken.link_id == Link.id)
        .order_by(Link.deleted_at.is_not(None), Link.id)
    )
    with make_sessionmaker(engine)() as session:
        rows = session.execute(query).all()
        unbound = session.scalar(
            select(func.count()).select_from(LinkToken).where(LinkToken.link_id.is_(None))
        )
    if as_json:
        docs = [_link_json(*row) for row in rows]
        print(json.dumps(docs, indent=2), file=out)
        return 0
    header = ("LINK", "INSTITUTION", "HOLDER", "STATUS", "ACCOUNTS", "LAST SYNC (UTC)", "TOKEN")
    table: list[tuple[str, ...]] = [header]
    for lid, inst, holder, status, active, n, synced, deleted, has_token, _ in rows:
        table.append(
            (
                lid,
                inst or "?",
                holder or "?",
                _shown_status(status, active, deleted),
                str(n),
                synced.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if synced else "never",
                "yes" if has_token else "no",
            )
        )
    if not rows:
        print("no links yet: run `fintoc-sync sync` to list your organization's links", file=out)
    else:
        _print_table(table, out)
    if unbound:
        print(f"{unbound} registered token(s) not yet matched to a link (run `sync`)", file=out)
    return 0


def _shown_status(status: str | None, active: bool | None, deleted: datetime | None) -> str:
    """One word for the STATUS column; a link gone from the API is `deleted`, whatever its
    last known status was (that stays in `links.status` and in `--json`)."""
    if deleted is not None:
        return "deleted"
    return status or ("active" if active else "inactive" if active is False else "?")


def _link_json(
    lid: str,
    inst: str | None,
    holder: str | None,
    status: str | None,
    active: bool | None,
    n: int,
    synced: datetime | None,
    deleted: datetime | None,
    has_token: bool,
    error: str | None,
) -> dict[str, object]:
    return {
        "id": lid,
        "institution": inst,
        "holder_type": holder,
        "status": _shown_status(status, active, deleted),
        "last_known_status": status,
        "active": active,
        "accounts": int(n),
        "last_synced_at": synced.isoformat() if synced else None,
        "deleted_at": deleted.isoformat() if deleted else None,
        "token_registered": bool(has_token),
        "last_sync_error": error,
    }


def _print_table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(), file=out
        )


def links_rotate_key(engine: Engine, wiring: Wiring, new_key_env: str, out: TextIO) -> int:
    """Re-encrypt every token under a new key in one transaction."""
    old = vault.make_cipher(wiring.settings.require_encryption_key())
    new_raw = os.environ.get(new_key_env)
    if not new_raw:
        raise ConfigError(f"{new_key_env} is not set; put the new Fernet key there")
    new = vault.make_cipher(new_raw)
    with make_sessionmaker(engine).begin() as session:
        count = vault.rotate_key(session, old, new)
    print(
        f"re-encrypted {count} link token(s); set FINTOC_SYNC_ENCRYPTION_KEY to the new key now",
        file=out,
    )
    return 0


# ------------------------------------------------------------------------- backfill


def _dates(args: argparse.Namespace, today: date) -> tuple[date, date]:
    """--since, and --until (exclusive; by default tomorrow, so today is included)."""
    from sync.run.backfill import parse_day

    since = parse_day(args.since, "--since")
    until = parse_day(args.until, "--until") if args.until else today + timedelta(days=1)
    if since >= until:
        raise ConfigError(f"--since ({since}) must be before --until ({until}, exclusive)")
    return since, until


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM acts as Ctrl-C: the run row is closed ``interrupted`` and the CLI exits 130."""

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_backfill_command(
    engine: Engine, wiring: Wiring, args: argparse.Namespace, out: TextIO
) -> int:
    """``fintoc-sync backfill``: 0 all chunks done, 1 some account failed, 2 bad usage."""
    since, until = _dates(args, datetime.now(UTC).date())
    wiring.settings.require_encryption_key()
    wiring.settings.require_secret_key()
    with wiring.client() as client, _sigterm_interrupts():
        backfill = wiring.backfill(engine, client)
        backfill.progress = lambda accounts, chunks: Progress(accounts, chunks, stream=sys.stderr)
        report = backfill.run(
            since,
            until,
            chunk_days=getattr(args, "chunk_days", None),
            link_id=getattr(args, "link", None),
            account_id=getattr(args, "account", None),
        )
    print(
        f"backfill run {report.run_id}: {report.chunks_done} chunk(s) read, "
        f"{report.chunks_skipped} already done; {report.movements_read} movements read, "
        f"{report.movements_upserted} written, {report.movements_changed} changes, "
        f"{report.movements_removed} removed; {len(report.failures)} account(s) failed",
        file=out,
    )
    for failure in report.failures:
        print(
            f"  failed: {failure.subject()}: {failure.message}",
            file=out,
        )
    return report.exit_code
