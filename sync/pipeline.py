"""One sync cycle: which links are fetched, in what order, in which transaction.

1. A `sync_runs` row is opened (committed at once, so a killed run is visible).
2. The whole link list is read (`GET /v1/links`, every page) and upserted in one
   transaction: institutions, links, status transitions, and — only when the list
   was read completely and parsed cleanly — `deleted_at` for missing links.
3. Every registered token is fetched (`GET /v1/links/{token}`) in a bounded thread
   pool; each link's link row, accounts, snapshots and movements commit together
   in that link's own transaction, so one bad link never undoes another.
4. The run row gets its counts, errors (redacted) and final status.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from cryptography.fernet import Fernet
from sqlalchemy import Connection, Engine, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from models import Link, LinkToken, SyncRun
from sync import load, schemas, tokens
from sync.concurrency import run_bounded
from sync.db import lock_key
from sync.errors import ApiError, AuthenticationError, FintocSyncError, LinkError
from sync.redact import scrub

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The real clock (tests inject their own)."""
    return datetime.now(UTC)


class LinkSource(Protocol):
    """What the pipeline needs from the API client."""

    def iter_links(self, status: str | None = None) -> Any: ...

    def get_link(self, link_token: str) -> dict[str, Any]: ...


class AccountHook(Protocol):
    """Extra per-account work done inside the link's transaction (movements)."""

    def __call__(
        self, session: Session, link_token: str, account: schemas.Account, run: RunContext
    ) -> None: ...


@dataclass
class LinkFailure:
    """A link that could not be synced, with a message safe to show and store."""

    link_id: str | None
    kind: str
    message: str
    # A short, non-secret handle on the token (its fingerprint's start) when the link
    # id is not known yet, so the operator can tell which registered token failed.
    token_ref: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The JSON stored in sync_runs.errors."""
        doc = {"link_id": self.link_id, "kind": self.kind, "message": self.message}
        return doc | ({"token_ref": self.token_ref} if self.token_ref else {})

    def subject(self) -> str:
        """Who failed, in words: a link, a token not yet matched, the list, or the run."""
        if self.link_id:
            return f"link {self.link_id}"
        if self.token_ref:
            return f"token {self.token_ref}… (not yet matched to a link)"
        if self.kind.startswith("list:"):
            return "the link list"
        return "the run"


@dataclass
class RunContext:
    """Counters and identity of one run, shared by its workers."""

    run_id: int
    now: datetime
    counts: dict[str, int] = field(default_factory=dict)
    failures: list[LinkFailure] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    lease: RunLease | None = None

    def add(self, **counts: int) -> None:
        """Add to the run's counters (thread-safe)."""
        with self.lock:
            for key, value in counts.items():
                self.counts[key] = self.counts.get(key, 0) + value

    def fail(self, failure: LinkFailure) -> None:
        """Record a failed link (thread-safe) and log it."""
        with self.lock:
            self.failures.append(failure)
        log.error("%s failed (%s): %s", failure.subject(), failure.kind, failure.message)


ABANDONED_MESSAGE = (
    "the process ended without closing this run (killed, or its database connection was lost)"
)


def run_lock_key(run_id: int) -> int:
    """The advisory-lock key a live run holds for its whole life."""
    return lock_key(f"fintoc-sync:run:{run_id}")


@dataclass
class RunLease:
    """A ``sync_runs`` row and the session advisory lock that says its process is alive.

    The row is inserted and the lock taken in one transaction, so no other process can
    see the row ``running`` without its lock. A process killed by SIGKILL (or whose
    connection the server dropped) loses the lock with its session; the next run to
    open finds that row unlocked and closes it as ``abandoned`` (close_abandoned_runs).
    """

    conn: Connection
    run_id: int

    @classmethod
    def open(cls, sessions: sessionmaker[Session], kind: str, now: datetime) -> RunLease:
        """Insert the run row (committed at once, so even a killed run is visible)."""
        bind = sessions.kw.get("bind")
        assert isinstance(bind, Engine), "the sessionmaker must be bound to an engine"
        # A connection of its own, kept out of the pool for the whole run: a pooled one
        # would carry the session lock to whoever checks it out next.
        conn = bind.connect()
        try:
            with Session(bind=conn) as session:
                row = SyncRun(kind=kind, started_at=now, status="running", errors=[])
                session.add(row)
                session.flush()
                run_id = row.id
                session.execute(text("SELECT pg_advisory_lock(:k)"), {"k": run_lock_key(run_id)})
                session.commit()
        except BaseException:
            conn.close()
            raise
        lease = cls(conn, run_id)
        try:
            abandoned = close_abandoned_runs(sessions, now)
        except Exception as exc:  # bookkeeping only: never a reason to fail the run
            log.warning("could not close abandoned runs: %s", describe(exc)[1][:200])
        else:
            if abandoned:
                log.warning("closed %d run(s) left running by a dead process", abandoned)
        return lease

    def release(self) -> None:
        """Drop the lock (the run row is closed) and the connection."""
        try:
            self.conn.execute(
                text("SELECT pg_advisory_unlock(:k)"), {"k": run_lock_key(self.run_id)}
            )
            self.conn.commit()
        except Exception:  # the connection may be gone, and the lock with it
            log.debug("run lock release failed; the server dropped it with the session")
        finally:
            self.conn.close()


def close_abandoned_runs(sessions: sessionmaker[Session], now: datetime) -> int:
    """Mark ``running`` rows whose process no longer holds their lock as ``abandoned``."""
    closed = 0
    with sessions.begin() as session:
        running = session.scalars(select(SyncRun.id).where(SyncRun.status == "running")).all()
        for run_id in running:
            # Free only if nobody holds the run's session lock; released at commit.
            free = session.execute(
                text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": run_lock_key(run_id)}
            ).scalar()
            if free:
                session.execute(
                    update(SyncRun)
                    .where(SyncRun.id == run_id, SyncRun.status == "running")
                    .values(status="abandoned", finished_at=now, error_summary=ABANDONED_MESSAGE)
                )
                closed += 1
    return closed


@dataclass
class SyncReport:
    """The outcome of a run, as the CLI reports it."""

    run_id: int
    status: str
    links_total: int
    links_synced: int
    failures: list[LinkFailure]
    counts: dict[str, int]
    fatal: FintocSyncError | None = None

    @property
    def exit_code(self) -> int:
        """0 all synced, 1 some link failed, 2 configuration (e.g. the key was rejected)."""
        if isinstance(self.fatal, AuthenticationError):
            return 2
        return 0 if self.status == "succeeded" else 1


def describe(exc: BaseException) -> tuple[str, str]:
    """(kind, message) for an error, scrubbed of tokens and keys."""
    if isinstance(exc, FintocSyncError):
        return type(exc).__name__, scrub(str(exc))
    # Unexpected errors (a database fault, a bug) still must not leak secrets.
    return type(exc).__name__, scrub(f"unexpected error: {exc}")[:500]


@dataclass
class Pipeline:
    """Wires a client, a sessionmaker and a cipher into sync runs."""

    client: LinkSource
    sessions: sessionmaker[Session]
    cipher: Fernet | None
    clock: Clock = utc_now
    concurrency: int = 4
    account_hook: AccountHook | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, *, kind: str = "sync", link_id: str | None = None) -> SyncReport:
        """One full cycle (or one link with link_id). Never raises for per-link errors."""
        run = self._open_run(kind)
        fatal: FintocSyncError | None = None
        listed: list[str] = []
        try:
            listed = self._sync_link_list(run, only=link_id)
            self._sync_tokens(run, only=link_id)
        except AuthenticationError as exc:
            fatal = exc
            run.fail(LinkFailure(None, *describe(exc)))
        return self._close_run(run, listed, fatal)

    # ---------------------------------------------------------------- run bookkeeping

    def _open_run(self, kind: str) -> RunContext:
        now = self.clock()
        lease = RunLease.open(self.sessions, kind, now)
        log.info("run %d (%s) started", lease.run_id, kind)
        return RunContext(run_id=lease.run_id, now=now, lease=lease)

    def _close_run(
        self, run: RunContext, listed: Sequence[str], fatal: FintocSyncError | None
    ) -> SyncReport:
        synced = run.counts.get("links_synced", 0)
        failed_links = failed_subjects(run.failures)
        if fatal is not None or (run.failures and not synced and not listed):
            status = "failed"
        elif self.stop.is_set():
            status = "interrupted"
        elif run.failures:
            status = "partial"
        else:
            status = "succeeded"
        summary = "; ".join(f"{f.link_id or 'run'}: {f.message}" for f in run.failures[:5]) or None
        total = max(len(listed), synced + len(failed_links))
        with self.sessions.begin() as session:
            session.execute(
                update(SyncRun)
                .where(SyncRun.id == run.run_id)
                .values(
                    finished_at=self.clock(),
                    status=status,
                    links_total=total,
                    links_synced=synced,
                    links_failed=len(failed_links),
                    accounts_upserted=run.counts.get("accounts_upserted", 0),
                    snapshots_written=run.counts.get("snapshots_written", 0),
                    transitions_written=run.counts.get("transitions_written", 0),
                    movements_upserted=run.counts.get("movements_upserted", 0),
                    movements_changed=run.counts.get("movements_changed", 0),
                    movements_removed=run.counts.get("movements_removed", 0),
                    errors=[f.as_json() for f in run.failures],
                    error_summary=summary[:2000] if summary else None,
                )
            )
        log.info(
            "run %d finished: %s (%d links synced, %d failed)",
            run.run_id,
            status,
            synced,
            len(failed_links),
        )
        if run.lease is not None:
            run.lease.release()
        return SyncReport(run.run_id, status, total, synced, run.failures, run.counts, fatal)

    # ---------------------------------------------------------------- phase 1: the list

    def _sync_link_list(self, run: RunContext, only: str | None) -> list[str]:
        """Read every page of GET /v1/links and upsert it; returns the listed ids."""
        links: list[schemas.Link] = []
        clean = True
        try:
            for obj in self.client.iter_links():
                try:
                    links.append(schemas.parse_link(obj))
                except FintocSyncError as exc:
                    clean = False
                    run.fail(LinkFailure(_guess_id(obj), *describe(exc)))
        except AuthenticationError:
            raise
        except FintocSyncError as exc:
            # Without the full list we cannot tell deleted links; tokens still sync.
            run.fail(LinkFailure(None, "list:" + describe(exc)[0], describe(exc)[1]))
            return []
        if only is not None:
            links = [link for link in links if link.id == only]
        with self.sessions.begin() as session:
            result = load.upsert_links(
                session, links, run.now, run.run_id, complete=clean and only is None
            )
            load.touch_links(session, [link.id for link in links], run.now)
        run.add(transitions_written=result.transitions, links_deleted=result.deleted)
        log.info(
            "listed %d links (%d changed, %d status transitions, %d newly deleted)",
            len(links),
            result.changed,
            result.transitions,
            result.deleted,
        )
        return [link.id for link in links]

    # ---------------------------------------------------------------- phase 2: per link

    def _sync_tokens(self, run: RunContext, only: str | None) -> None:
        if self.cipher is None:
            log.warning("no FINTOC_SYNC_ENCRYPTION_KEY: registered link tokens cannot be read")
            return
        with self.sessions() as session:
            stored = tokens.load_tokens(session, self.cipher)
            gone = set(session.scalars(select(Link.id).where(Link.deleted_at.is_not(None))))
            rejected = frozenset(
                session.scalars(
                    select(LinkToken.fingerprint).where(LinkToken.invalid_since.is_not(None))
                )
            )
        # A link deleted at Fintoc invalidates its token (fintoc-api.md §2): not a failure.
        skipped = [t for t in stored if t.link_id in gone]
        stored = [t for t in stored if t.link_id not in gone]
        if skipped:
            log.info("%d link(s) were deleted at Fintoc; their tokens are skipped", len(skipped))
        if only is not None:
            stored = [t for t in stored if t.link_id in (only, None)]
        if not stored:
            log.info("no link tokens registered: accounts are not fetched")
            return
        workers = max(1, min(self.concurrency, len(stored)))
        # _sync_one never raises but for AuthenticationError, which ends the run.
        run_bounded(
            workers,
            stored,
            lambda t: self._sync_one(run, t, only, rejected),
            name="link",
            stop=self.stop,
        )

    def _sync_one(
        self,
        run: RunContext,
        token: tokens.StoredToken,
        only: str | None,
        rejected: frozenset[str] = frozenset(),
    ) -> None:
        if self.stop.is_set():
            return
        payload: object = None
        try:
            payload = self.client.get_link(token.token)
            link, accounts = schemas.parse_link_with_accounts(payload)
            if only is not None and link.id != only:
                return
            self._load_link(run, token, link, accounts)
        except AuthenticationError:
            self.stop.set()  # every other request would be refused too
            raise
        except Exception as exc:  # one link's failure must not stop the others
            if token.fingerprint in rejected and is_unknown_token(exc):
                # Reported as a failure when first seen; a token of a link deleted before we
                # ever listed it would otherwise fail every run forever. Still tried, so a
                # token that works again is picked up (bind_token clears invalid_since).
                log.info("a registered token is still rejected by the API (unknown or revoked)")
                return
            self._record_failure(run, token, exc, token.link_id or _guess_id(payload))

    def _load_link(
        self,
        run: RunContext,
        token: tokens.StoredToken,
        link: schemas.Link,
        accounts: list[schemas.Account],
    ) -> None:
        """Everything of one link in one transaction."""
        now = self.clock()
        with self.sessions.begin() as session:
            links_result = load.upsert_links(session, [link], now, run.run_id)
            acc_result = load.upsert_accounts(session, accounts, now, run.run_id)
            tokens.bind_token(session, token.fingerprint, link.id, now)
            for account in accounts:
                if self.account_hook is not None:
                    self.account_hook(session, token.token, account, run)
            session.execute(
                update(Link)
                .where(Link.id == link.id)
                .values(last_synced_at=now, last_sync_error=None)
            )
        run.add(
            links_synced=1,
            accounts_upserted=acc_result.upserted,
            snapshots_written=acc_result.snapshots,
            transitions_written=links_result.transitions,
        )
        log.info(
            "link %s synced: %d accounts (%d changed), %d balance snapshots",
            link.id,
            len(accounts),
            acc_result.upserted,
            acc_result.snapshots,
        )

    def _record_failure(
        self, run: RunContext, token: tokens.StoredToken, exc: Exception, link_id: str | None
    ) -> None:
        kind, message = describe(exc)
        run.fail(LinkFailure(link_id, kind, message, None if link_id else token.fingerprint[:12]))
        try:
            with self.sessions.begin() as session:
                if is_unknown_token(exc):
                    tokens.mark_invalid(session, token.fingerprint, self.clock())
                if link_id is not None:
                    session.execute(
                        update(Link).where(Link.id == link_id).values(last_sync_error=message)
                    )
        except Exception:  # the database itself may be what failed
            log.warning("could not record the failure of link %s", link_id or "?")


def is_unknown_token(exc: BaseException) -> bool:
    """The API answered 404 for a link token: unknown, revoked, or its link deleted."""
    return isinstance(exc, LinkError) and isinstance(exc, ApiError) and exc.status == 404


def failed_subjects(failures: Sequence[LinkFailure]) -> set[str]:
    """The distinct links (or not-yet-matched tokens) that failed; run-level errors excluded."""
    return {f.link_id or f.token_ref or "" for f in failures if f.link_id or f.token_ref}


def _guess_id(obj: object) -> str | None:
    """The id of a malformed list item, if it has a usable one."""
    if isinstance(obj, dict):
        value = obj.get("id")
        if isinstance(value, str) and 0 < len(value) <= 200:
            return value
    return None


def registered_link_ids(sessions: sessionmaker[Session]) -> set[str]:
    """Ids of links that have a token bound to them."""
    from models import LinkToken

    with sessions() as session:
        return set(session.scalars(select(LinkToken.link_id).where(LinkToken.link_id.is_not(None))))
