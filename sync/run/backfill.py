"""``fintoc-sync backfill``: load movement history for a date range, resumably.

Each account's range ``[since, until)`` is split into chunks. A chunk is read
completely, written with the same batch writer as the incremental sync
(:func:`sync.store.movements.write_batch`), reconciled (stored movements of the chunk that
the API no longer returns are soft-deleted), and checkpointed in ``backfill_chunks`` —
all in one transaction. A killed run therefore loses at most the chunk in flight, and
a rerun skips the checkpointed chunks. ``movement_cursors`` is never touched: the
incremental sync owns it. A sync of the same account waits on the account's row lock
(``lock_account``) while a chunk is written, and vice versa.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import chain
from operator import itemgetter
from typing import Any, Protocol

from cryptography.fernet import Fernet
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from models import BackfillChunk, LinkToken
from sync.api import schemas
from sync.errors import AuthenticationError, ConfigError
from sync.run.concurrency import run_bounded
from sync.run.context import Clock, Failure, utc_now
from sync.run.movements import owner_conflict
from sync.run.pipeline import is_unknown_token
from sync.run.runs import RunLease, close_run
from sync.store import loaders, vault
from sync.store.movements import (
    MovementWriter,
    StreamConflict,
    WriteResult,
    advance_cursor,
    lock_account,
    lock_account_window,
)

log = logging.getLogger(__name__)

#: a movement's post_date, by position (Movement is a NamedTuple)
_POST_DATE = itemgetter(schemas.Movement._fields.index("post_date"))

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


def uncovered(chunk: Range, done: Sequence[Range]) -> list[Range]:
    """The parts of ``chunk`` that no checkpointed range covers, oldest first."""
    gaps: list[Range] = []
    start, end = chunk
    for a, b in sorted(done):
        if b <= start:
            continue
        if a >= end:
            break
        if a > start:
            gaps.append((start, a))
        start = max(start, b)
        if start >= end:
            return gaps
    if start < end:
        gaps.append((start, end))
    return gaps


def pending_chunks(chunks: Sequence[Range], done: Sequence[Range]) -> list[Range]:
    """The parts of the chunks that no checkpointed range covers yet, oldest first."""
    return [gap for chunk in chunks for gap in uncovered(chunk, done)]


def _overlaps(a: Range, b: Range) -> bool:
    return a[0] < b[1] and b[0] < a[1]


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
    # the account's refreshed_at when the backfill started (None if unknown)
    refreshed_at: datetime | None = None


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
    failures: list[Failure] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 every chunk done, 1 some account failed (the rest is committed)."""
        return 1 if self.failures else 0


class ProgressSink(Protocol):
    """Where a backfill reports its progress (the app draws it)."""

    def chunk_done(self, account_id: str, since: str, until: str, movements: int) -> None: ...

    def account_done(self, skipped_chunks: int = 0) -> None: ...

    def finish(self) -> None: ...


class _NoProgress:
    def chunk_done(self, account_id: str, since: str, until: str, movements: int) -> None:
        pass

    def account_done(self, skipped_chunks: int = 0) -> None:
        pass

    def finish(self) -> None:
        pass


@dataclass
class Backfill:
    """Runs backfills with a client, a sessionmaker and the token cipher."""

    client: Any  # MovementSource plus get_link
    sessions: sessionmaker[Session]
    cipher: Fernet
    clock: Clock = utc_now
    progress: Callable[[int, int], ProgressSink] = lambda accounts, chunks: _NoProgress()
    # Decrypted tokens are handed here (the composition root scrubs them from logs).
    register_secrets: Callable[[Iterable[str]], None] = lambda secrets: None
    concurrency: int = 1
    #: movements per checkpoint (one transaction each); the work a kill can lose
    checkpoint_rows: int = 5000
    #: a segment over days with nothing stored yet goes through one streamed COPY
    #: (``MovementWriter(stream=True)``); False: always the batched, staged writes
    stream: bool = True
    #: movements per write (COPY + insert) when not streamed. Each worker holds up to this
    #: many parsed movements (~1 KB each): 5,000 × 8 workers made peak RSS grow
    batch_rows: int = 1000
    #: a read from at least this many days back through today moves the sync's cursor
    cursor_days: int = 30
    _rejected: frozenset[str] = frozenset()  # fingerprints the API already refused
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _lease: RunLease | None = None

    def run(
        self,
        since: date,
        until: date,
        *,
        chunk_days: int | None = None,
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
            report.failures.append(Failure.of(exc))
            self._close_run(report, status="failed")
            raise
        self._close_run(report)
        return report

    def _run(
        self,
        report: BackfillReport,
        since: date,
        until: date,
        chunk_days: int | None,
        link_id: str | None,
        account_id: str | None,
    ) -> None:
        # One paginated read per account by default; checkpoints inside it bound the loss.
        chunk_days = chunk_days or max(1, (until - since).days)
        targets = self._targets(report, link_id, account_id)
        chunks = split_range(since, until, chunk_days)
        done = self._checkpoints()
        plans = [(t, pending_chunks(chunks, done.get(t.account_id, []))) for t in targets]
        total = sum(len(pending) for _, pending in plans)
        report.chunks_skipped = sum(
            1 for _, pending in plans for c in chunks if not any(_overlaps(c, g) for g in pending)
        )
        progress = self.progress(len(targets), total)
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
        undecryptable: list[str] = []
        with self.sessions() as session:
            stored = vault.load_tokens(session, self.cipher, skipped=undecryptable)
            self._rejected = frozenset(
                session.scalars(
                    select(LinkToken.fingerprint).where(LinkToken.invalid_since.is_not(None))
                )
            )
        self.register_secrets([t.token for t in stored])
        for fp in undecryptable:  # one token stored under another key fails alone
            report.failures.append(
                Failure(None, "UndecryptableToken", "cannot decrypt it with this key", fp[:12])
            )
        if link_id is not None:
            stored = [t for t in stored if t.link_id in (link_id, None)]
        # Links are independent: their account lists are read (and stored) side by side.
        per_token: list[list[Target]] = [[] for _ in stored]
        run_bounded(
            self.concurrency,
            range(len(stored)),
            lambda i: per_token[i].extend(self._accounts_of(report, stored[i], link_id)),
            name="backfill-links",
            stop=self._stop,
        )
        targets = [t for found in per_token for t in found]
        if account_id is not None:
            targets = [t for t in targets if t.account_id == account_id]
        if (link_id or account_id) and not targets:
            which = f"account {account_id}" if account_id else f"link {link_id}"
            raise ConfigError(f"no registered link token gives access to {which}")
        return sorted(targets, key=lambda t: (t.link_id, t.account_id))

    def _accounts_of(
        self, report: BackfillReport, token: vault.StoredToken, only: str | None
    ) -> list[Target]:
        """The link's accounts in their full form (with ``refreshed_at``), stored as read."""
        try:
            link_id, accounts = self._load_accounts(token)
        except AuthenticationError:
            raise
        except Exception as exc:  # one bad link must not stop the others
            if token.fingerprint in self._rejected and is_unknown_token(exc):
                log.info("a registered token is still rejected by the API: skipped")
                return []
            if is_unknown_token(exc):
                with self.sessions.begin() as session:
                    vault.mark_invalid(session, token.fingerprint, self.clock())
            self._fail(report, token.link_id, None, exc)
            return []
        if only is not None and link_id != only:
            return []
        return [Target(link_id, a.id, token.token, a.refreshed_at) for a in accounts]

    def _load_accounts(self, token: vault.StoredToken) -> tuple[str, list[schemas.Account]]:
        """GET /v1/accounts (after GET /v1/links/{token} for a token not yet matched to a
        link) and store the accounts, in their own transaction."""
        link: schemas.Link | None = None
        if token.link_id is None:
            link = schemas.parse_link(self.client.get_link(token.token))
        link_id = link.id if link else token.link_id
        assert link_id is not None
        accounts = [
            schemas.parse_account(obj, link_id) for obj in self.client.iter_accounts(token.token)
        ]
        now = self.clock()
        with self.sessions.begin() as session:
            if link is not None:
                loaders.upsert_links(session, [link], now, None)
                vault.bind_token(session, token.fingerprint, link_id, now)
            loaders.upsert_accounts(session, accounts, now, None)
        return link_id, accounts

    def _checkpoints(self) -> dict[str, list[Range]]:
        """Every account's checkpointed ranges, in one query."""
        done: dict[str, list[Range]] = {}
        with self.sessions() as session:
            rows = session.execute(
                select(BackfillChunk.account_id, BackfillChunk.since, BackfillChunk.until)
            ).all()
        for row in rows:
            done.setdefault(row.account_id, []).append((row.since, row.until))
        return done

    # ---------------------------------------------------------------- chunks

    def _account(
        self, report: BackfillReport, progress: ProgressSink, target: Target, chunks: list[Range]
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
        self, report: BackfillReport, progress: ProgressSink, target: Target, chunk: Range
    ) -> None:
        """Read a range in one paginated pass, newest first, committing a checkpoint every
        ``checkpoint_rows`` movements at a day boundary: a killed run loses at most that
        much work, and a rerun reads only the days no checkpoint covers."""
        since, until = chunk
        now = self.clock()
        stream = iter(
            self.client.iter_movement_pages(
                target.account_id, target.token, since=since, until=until
            )
        )
        upper, carry, total = until, None, WriteResult()
        # The last segment of a read that spans the sync's whole window through today
        # also moves the account's incremental cursor: the next sync then reads only what
        # Fintoc refreshed since (its window would add nothing this read did not cover).
        moves_cursor = until > now.date() and since <= now.date() - timedelta(self.cursor_days)
        while upper > since:
            lower, carry, result = self._segment(
                target, stream, (since, upper), carry, now, moves_cursor
            )
            total.add(result)
            with self._lock:
                report.movements_read += result.read
                report.movements_upserted += result.upserted
                report.movements_changed += result.changes
                report.movements_removed += result.removed
            upper = lower
        conflict = owner_conflict(target.link_id, target.account_id, total)
        if conflict is not None:  # the rest of the chunk is written and checkpointed
            self._report(report, conflict)
        with self._lock:
            report.chunks_done += 1
            progress.chunk_done(target.account_id, since.isoformat(), until.isoformat(), total.read)

    def _segment(
        self,
        target: Target,
        stream: Iterator[list[schemas.Movement]],
        span: Range,
        carry: list[schemas.Movement] | None,
        now: datetime,
        moves_cursor: bool,
    ) -> tuple[date, list[schemas.Movement] | None, WriteResult]:
        """Write movements of days below ``upper`` until the checkpoint size is reached at a
        day boundary (or the range ends); reconcile and checkpoint ``[lower, upper)`` in one
        transaction. Returns ``lower``, the rest of the page the next segment starts with,
        and the result."""
        since, upper = span
        lower: date = since
        next_carry: list[schemas.Movement] | None = None
        try:
            with self.sessions.begin() as session:
                # A streamed segment only inserts into days never loaded, so its commit
                # does not wait for its WAL flush (ADR 0010): a server crash may lose the
                # last such commits, data and checkpoint together; a rerun reads them again.
                live = lock_account_window(
                    session, target.account_id, since, upper, quiet_commit=self.stream
                )
                writer = MovementWriter(
                    session,
                    target.account_id,
                    now,
                    self.batch_rows,
                    (since, upper),
                    stream=self.stream,
                    window_live=live,
                )
                try:
                    split = self._write_pages(writer, chain([carry] if carry else [], stream))
                    if split is not None:
                        lower, next_carry = split
                    writer.reconcile(lower, upper)
                except BaseException as exc:
                    writer.abort(exc)  # an open COPY ends before the rollback
                    raise
                self._close_segment(
                    session,
                    target,
                    (lower, upper),
                    writer.result,
                    now,
                    moves_cursor and lower == since,
                )
            return lower, next_carry, writer.result
        except StreamConflict as conflict:
            # An id of this window is stored under another account, or came twice: the
            # window is read again and written the careful way (staged, compared).
            log.info(
                "account %s: %s; reading %s..%s again through the staging table",
                target.account_id,
                conflict,
                lower.isoformat(),
                upper.isoformat(),
            )
        with self.sessions.begin() as session:
            lock_account(session, target.account_id)
            writer = MovementWriter(
                session, target.account_id, now, self.batch_rows, (lower, upper)
            )
            rows = self.client.iter_movement_rows(
                target.account_id, target.token, since=lower, until=upper
            )
            for mov in rows:
                writer.add(mov)
            writer.reconcile(lower, upper)
            self._close_segment(
                session, target, (lower, upper), writer.result, now, moves_cursor and lower == since
            )
        return lower, next_carry, writer.result

    def _write_pages(
        self, writer: MovementWriter, pages: Iterable[list[schemas.Movement]]
    ) -> tuple[date, list[schemas.Movement]] | None:
        """Hand pages to the writer until it holds ``checkpoint_rows`` movements and a page
        reaches an older day than any before it (newest first: every later day is then
        read completely). Returns that day + 1 and the rest of its page, or None at the
        end of the read."""
        limit = self.checkpoint_rows
        last_day: date | None = None
        for page in pages:
            added = writer.added
            if added + len(page) <= limit:  # no boundary can fall inside this page
                writer.add_page(page)
                oldest = min(page, key=_POST_DATE).post_date.date()
                last_day = oldest if last_day is None else min(last_day, oldest)
                continue
            for i, mov in enumerate(page):
                day = mov.post_date.date()
                if added + i >= limit and last_day is not None and day < last_day:
                    if i:
                        writer.add_page(page[:i])
                    return day + timedelta(days=1), page[i:]
                last_day = day if last_day is None else min(last_day, day)
            writer.add_page(page)
        return None

    def _close_segment(
        self,
        session: Session,
        target: Target,
        span: Range,
        result: WriteResult,
        now: datetime,
        advance: bool,
    ) -> None:
        """Checkpoint a written segment; ``advance``: also move the sync's cursor (the
        last segment of a read that spans the sync's whole window)."""
        self._checkpoint(session, target, span, result.read, now)
        if advance:
            advance_cursor(session, target.account_id, now.date(), now, target.refreshed_at)

    def _checkpoint(
        self, session: Session, target: Target, span: Range, movements: int, now: datetime
    ) -> None:
        """Record ``span`` as read; days from today on are not final (read again next time)."""
        today = now.date()
        lower, upper = span
        end = min(upper, today)
        if lower < end:
            session.execute(
                insert(BackfillChunk)
                .values(
                    account_id=target.account_id,
                    since=lower,
                    until=end,
                    movements=movements,
                    completed_at=now,
                )
                .on_conflict_do_nothing()
            )

    def _fail(
        self, report: BackfillReport, link_id: str | None, account_id: str | None, exc: Exception
    ) -> None:
        self._report(report, Failure.of(exc, link_id=link_id, account_id=account_id))

    def _report(self, report: BackfillReport, failure: Failure) -> None:
        with self._lock:
            report.failures.append(failure)
        log.error(
            "backfill of %s failed (%s): %s", failure.subject(), failure.kind, failure.message
        )

    # ---------------------------------------------------------------- the run row

    def _open_run(self) -> int:
        self._lease = RunLease.open(self.sessions, "backfill", self.clock())
        return self._lease.run_id

    def _close_run(self, report: BackfillReport, status: str | None = None) -> None:
        if status is None:
            status = "partial" if report.failures else "succeeded"
            if report.failures and not report.chunks_done and not report.chunks_skipped:
                status = "failed"
        counts = {
            "movements_upserted": report.movements_upserted,
            "movements_changed": report.movements_changed,
            "movements_removed": report.movements_removed,
        }
        close_run(
            self.sessions,
            self._lease,
            report.run_id,
            status=status,
            finished_at=self.clock(),
            counts=counts,
            failures=report.failures,
        )
