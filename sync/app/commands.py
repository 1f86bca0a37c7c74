"""What the CLI commands do, apart from argument parsing: wiring and reporting."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from types import FrameType
from typing import TextIO

from sqlalchemy import Engine, func, select

from models import Account, Institution, Link, LinkToken
from sync.app.progress import Progress
from sync.app.wiring import Wiring
from sync.errors import ConfigError
from sync.run.backfill import parse_day
from sync.run.context import utc_now
from sync.run.pipeline import SyncReport, failed_subjects
from sync.store import vault
from sync.store.db import make_sessionmaker, wait_sync_lock

log = logging.getLogger(__name__)


def run_sync_once(engine: Engine, wiring: Wiring, *, link_id: str | None = None) -> SyncReport:
    """`fintoc-sync sync`: wait for other syncs, then one cycle."""
    if wiring.settings.encryption_key is None:
        log.warning("FINTOC_SYNC_ENCRYPTION_KEY is unset: only the link list is synced")
    with wiring.client() as client:
        pipeline = wiring.pipeline(engine, client)
        with wait_sync_lock(engine):
            return pipeline.run(kind="sync", link_id=link_id)


def print_report(report: SyncReport, out: TextIO) -> None:
    """A short human summary of a run."""
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


def links_add(engine: Engine, wiring: Wiring, raw: list[str], out: TextIO) -> int:
    """Register tokens encrypted; says how many were new, never shows them."""
    cipher = vault.make_cipher(wiring.settings.require_encryption_key())
    wiring.register_secrets(raw)
    with make_sessionmaker(engine).begin() as session:
        added = vault.add_tokens(session, cipher, raw, utc_now())
    unique = len({t.strip() for t in raw if t.strip()})
    print(f"registered {added} new link token(s); {unique - added} already known", file=out)
    return 0


def links_list(engine: Engine, out: TextIO) -> int:
    """Links with status, accounts, last sync and whether a token is registered."""
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
    header = ("LINK", "INSTITUTION", "HOLDER", "STATUS", "ACCOUNTS", "LAST SYNC", "TOKEN")
    table: list[tuple[str, ...]] = [header]
    for lid, inst, holder, status, active, n, synced, deleted, has_token in rows:
        shown = "deleted" if deleted else (status or ("active" if active else "?"))
        when = synced.strftime("%Y-%m-%d %H:%M") if synced else "never"
        table.append(
            (lid, inst or "?", holder or "?", shown, str(n), when, "yes" if has_token else "no")
        )
    if not rows:
        print("no links yet: run `fintoc-sync sync` to list your organization's links", file=out)
    else:
        _print_table(table, out)
    if unbound:
        print(f"{unbound} registered token(s) not yet matched to a link (run `sync`)", file=out)
    return 0


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
    since = parse_day(args.since, "--since")
    until = parse_day(args.until, "--until") if args.until else today
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
            chunk_days=getattr(args, "chunk_days", None) or 31,
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
