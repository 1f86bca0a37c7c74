"""``fintoc-sync backfill``: load movement history for a date range, resumably.

Each account's range ``[since, until)`` is split into chunks. A chunk is read
completely, written with the same batch writer as the incremental sync
(:func:`sync.movements.write_batch`), reconciled (stored movements of the chunk that
the API no longer returns are soft-deleted), and checkpointed in ``backfill_chunks`` —
all in one transaction. A killed run therefore loses at most the chunk in flight, and
a rerun skips the checkpointed chunks. ``movement_cursors`` is never touched: the
incremental sync owns it. A sync of the same account waits on the account's advisory
lock while a chunk is written, and vice versa.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from types import FrameType
from typing import Any, TextIO

from cryptography.fernet import Fernet
from sqlalchemy import Engine, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from models import Account, BackfillChunk, LinkToken, SyncRun
from sync import load, schemas, tokens
from sync.concurrency import run_bounded
from sync.config import Settings
from sync.db import make_sessionmaker
from sync.errors import AuthenticationError, ConfigError
from sync.logs import redaction_filter
from sync.movements import MovementSource, MovementWriter, lock_account
from sync.pipeline import Clock, RunLease, describe, is_unknown_token, utc_now
from sync.progress import Progress

log = logging.getLogger(__name__)

Range = tuple[date, date]


# ---------------------------------------------------------------- pure helpers


def parse_day(raw: str | None, flag: str) -> date:
    """A ``YYYY-MM-DD`` flag value, or a ConfigError (exit 2) that shows the format."""
    try:
        return date.fromisoformat(str(raw).strip())
    except ValueError:
        raise ConfigError(f"{flag} must be a date like 2024-01-01") from None


def split_range(since: date, until: date, days: int) -> list[Range]:
    """``[since, until)`` as consecutive chunks of at most ``days`` days, oldest first."""
    chunks: list[Range] = []
    start = since
    while start < until:
        end = min(start + timedelta(days=days), until)
        chunks.append((start, end))
        start = end
    return chunks


def is_covered(chunk: Range, done: Sequence[Range]) -> bool:
    """Whether checkpointed ranges (of any chunk size) together cover ``chunk``."""
    reached = chunk[0]
    for start, end in sorted(done):
        if start > reached:
            break
        reached = max(reached, end)
        if reached >= chunk[1]:
            return True
    return reached >= chunk[1]


# ---------------------------------------------------------------- what to read


@dataclass(frozen=True)
class Target:
    """One account to backfill; repr never shows the token."""

    link_id: str
    account_id: str
    token: str = field(repr=False)


@dataclass
class BackfillReport:
    """The outcome of a backfill run."""

    run_id: int
    chunks_done: int = 0
    chunks_skipped: int = 0
    movements_read: int = 0
    movements_upserted: int = 0
    movements_changed: int = 0
    movements_removed: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 every chunk done, 1 some account failed (the rest is committed)."""
        return 1 if self.failures else 0


@dataclass
class Backfill:
    """Runs backfills with a client, a sessionmaker and the token cipher."""

    client: Any  # MovementSource plus get_link
    sessions: sessionmaker[Session]
    cipher: Fernet
    clock: Clock = utc_now
    progress_stream: TextIO | None = None
    concurrency: int = 1
    _rejected: frozenset[str] = frozenset()  # fingerprints the API already refused
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _lease: RunLease | None = None

    def run(
        self,
        since: date,
        until: date,
        *,
        chunk_days: int = 31,
        link_id: str | None = None,
        account_id: str | None = None,
    ) -> BackfillReport:
        """Backfill every selected account; per-account errors are recorded, not raised.

        Ctrl-C / SIGTERM (KeyboardInterrupt) or any unexpected error closes the run row
        as ``interrupted`` / ``failed`` before propagating; the chunk in flight rolls back.
        """
        report = BackfillReport(run_id=self._open_run())
        try:
            self._run(report, since, until, chunk_days, link_id, account_id)
        except KeyboardInterrupt:
            self._close_run(report, status="interrupted")
            raise
        except BaseException as exc:
            report.failures.append({"link_id": None, "account_id": None, **_kind(exc)})
            self._close_run(report, status="failed")
            raise
        self._close_run(report)
        return report

    def _run(
        self,
        report: BackfillReport,
        since: date,
        until: date,
        chunk_days: int,
        link_id: str | None,
        account_id: str | None,
    ) -> None:
        targets = self._targets(report, link_id, account_id)
        plans = [
            (t, self._pending_chunks(t, split_range(since, until, chunk_days))) for t in targets
        ]
        total = sum(len(chunks) for _, chunks in plans)
        report.chunks_skipped = len(targets) * len(split_range(since, until, chunk_days)) - total
        progress = Progress(len(targets), total, stream=self.progress_stream or sys.stderr)
        # Accounts are independent: several at once overlap API and database waits.
        # Each worker has its own session per chunk; report and progress are shared.
        # On an error or Ctrl-C, _stop is set: chunks in flight commit, no new one starts.
        run_bounded(
            self.concurrency,
            plans,
            lambda plan: self._account(report, progress, *plan),
            name="backfill",
            stop=self._stop,
        )
        progress.finish()

    # ---------------------------------------------------------------- targets

    def _targets(
        self, report: BackfillReport, link_id: str | None, account_id: str | None
    ) -> list[Target]:
        with self.sessions() as session:
            stored = tokens.load_tokens(session, self.cipher)
            self._rejected = frozenset(
                session.scalars(
                    select(LinkToken.fingerprint).where(LinkToken.invalid_since.is_not(None))
                )
            )
        redaction_filter().add_secrets([t.token for t in stored])
        if link_id is not None:
            stored = [t for t in stored if t.link_id in (link_id, None)]
        targets: list[Target] = []
        for token in stored:
            targets += self._accounts_of(report, token, link_id)
        if account_id is not None:
            targets = [t for t in targets if t.account_id == account_id]
        if (link_id or account_id) and not targets:
            which = f"account {account_id}" if account_id else f"link {link_id}"
            raise ConfigError(f"no registered link token gives access to {which}")
        return sorted(targets, key=lambda t: (t.link_id, t.account_id))

    def _accounts_of(
        self, report: BackfillReport, token: tokens.StoredToken, only: str | None
    ) -> list[Target]:
        """The link's accounts, from the database, or from the API if it is unknown yet."""
        known: list[str] = []
        if token.link_id is not None:
            with self.sessions() as session:
                query = select(Account.id).where(Account.link_id == token.link_id)
                known = list(session.scalars(query.order_by(Account.id)))
        if known:
            assert token.link_id is not None
            return [Target(token.link_id, a, token.token) for a in known]
        try:
            link, accounts = self._load_link(token)
        except AuthenticationError:
            raise
        except Exception as exc:  # one bad link must not stop the others
            if token.fingerprint in self._rejected and is_unknown_token(exc):
                log.info("a registered token is still rejected by the API: skipped")
                return []
            if is_unknown_token(exc):
                with self.sessions.begin() as session:
                    tokens.mark_invalid(session, token.fingerprint, self.clock())
            self._fail(report, token.link_id, None, exc)
            return []
        if only is not None and link.id != only:
            return []
        return [Target(link.id, a.id, token.token) for a in accounts]

    def _load_link(self, token: tokens.StoredToken) -> tuple[schemas.Link, list[schemas.Account]]:
        """GET /v1/links/{token} and store the link and its accounts (own transaction)."""
        link, accounts = schemas.parse_link_with_accounts(self.client.get_link(token.token))
        now = self.clock()
        with self.sessions.begin() as session:
            load.upsert_links(session, [link], now, None)
            load.upsert_accounts(session, accounts, now, None)
            tokens.bind_token(session, token.fingerprint, link.id, now)
        return link, accounts

    def _pending_chunks(self, target: Target, chunks: list[Range]) -> list[Range]:
        with self.sessions() as session:
            rows = session.execute(
                select(BackfillChunk.since, BackfillChunk.until).where(
                    BackfillChunk.account_id == target.account_id
                )
            ).all()
        done = [(r.since, r.until) for r in rows]
        return [c for c in chunks if not is_covered(c, done)]

    # ---------------------------------------------------------------- chunks

    def _account(
        self, report: BackfillReport, progress: Progress, target: Target, chunks: list[Range]
    ) -> None:
        for index, chunk in enumerate(chunks):
            if self._stop.is_set():
                return
            try:
                self._chunk(report, progress, target, chunk)
            except AuthenticationError:
                self._stop.set()  # the key is refused: every other request would be too
                raise
            except Exception as exc:  # this account stops; the others go on
                self._fail(report, target.link_id, target.account_id, exc)
                with self._lock:
                    progress.account_done(skipped_chunks=len(chunks) - index)
                return
        with self._lock:
            progress.account_done()

    def _chunk(
        self, report: BackfillReport, progress: Progress, target: Target, chunk: Range
    ) -> None:
        """Read, write, reconcile and checkpoint one chunk in one transaction."""
        since, until = chunk
        now = self.clock()
        with self.sessions.begin() as session:
            lock_account(session, target.account_id)
            writer = MovementWriter(session, target.account_id, now)
            source: MovementSource = self.client
            pages = source.iter_movements(target.account_id, target.token, since=since, until=until)
            writer.add_payloads(pages)
            writer.reconcile(since, until)
            # A chunk that reaches past today is not final: the next run reads it again.
            if until <= now.date():
                session.execute(
                    insert(BackfillChunk)
                    .values(
                        account_id=target.account_id,
                        since=since,
                        until=until,
                        movements=writer.result.read,
                        completed_at=now,
                    )
                    .on_conflict_do_nothing()
                )
        r = writer.result
        with self._lock:
            report.chunks_done += 1
            report.movements_read += r.read
            report.movements_upserted += r.upserted
            report.movements_changed += r.changes
            report.movements_removed += r.removed
            progress.chunk_done(target.account_id, since.isoformat(), until.isoformat(), r.read)

    def _fail(
        self, report: BackfillReport, link_id: str | None, account_id: str | None, exc: Exception
    ) -> None:
        kind, message = describe(exc)
        with self._lock:
            report.failures.append(
                {"link_id": link_id, "account_id": account_id, "kind": kind, "message": message}
            )
        log.error("backfill of account %s failed (%s): %s", account_id or "?", kind, message)

    # ---------------------------------------------------------------- the run row

    def _open_run(self) -> int:
        self._lease = RunLease.open(self.sessions, "backfill", self.clock())
        return self._lease.run_id

    def _close_run(self, report: BackfillReport, status: str | None = None) -> None:
        try:
            self._write_close(report, status)
        except Exception as exc:  # the database may be what failed; the row is then abandoned
            log.warning("could not close backfill run %d: %s", report.run_id, describe(exc)[1])
        finally:
            if self._lease is not None:
                self._lease.release()

    def _write_close(self, report: BackfillReport, status: str | None) -> None:
        if status is None:
            status = "partial" if report.failures else "succeeded"
            if report.failures and not report.chunks_done and not report.chunks_skipped:
                status = "failed"
        summary = "; ".join(
            f"{f['account_id'] or f['link_id'] or 'run'}: {f['message']}"
            for f in report.failures[:5]
        )
        with self.sessions.begin() as session:
            session.execute(
                update(SyncRun)
                .where(SyncRun.id == report.run_id)
                .values(
                    finished_at=self.clock(),
                    status=status,
                    movements_upserted=report.movements_upserted,
                    movements_changed=report.movements_changed,
                    movements_removed=report.movements_removed,
                    errors=report.failures,
                    error_summary=summary[:2000] or None,
                )
            )


def _subject(failure: dict[str, Any]) -> str:
    """Who failed, in words."""
    if failure.get("account_id"):
        return f"account {failure['account_id']}"
    if failure.get("link_id"):
        return f"link {failure['link_id']}"
    return "a registered token not yet matched to a link"


def _kind(exc: BaseException) -> dict[str, str]:
    kind, message = describe(exc)
    return {"kind": kind, "message": message}


# ---------------------------------------------------------------- the command


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
    engine: Engine, settings: Settings, args: argparse.Namespace, out: TextIO
) -> int:
    """``fintoc-sync backfill``: 0 all chunks done, 1 some account failed, 2 bad usage."""
    from sync.commands import build_client

    since, until = _dates(args, datetime.now(UTC).date())
    cipher = tokens.make_cipher(settings.require_encryption_key())
    settings.require_secret_key()
    with build_client(settings) as client, _sigterm_interrupts():
        backfill = Backfill(
            client, make_sessionmaker(engine), cipher, concurrency=settings.concurrency
        )
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
            f"  failed: {_subject(failure)}: {failure['message']}",
            file=out,
        )
    return report.exit_code
