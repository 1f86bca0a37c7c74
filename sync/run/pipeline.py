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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography.fernet import Fernet
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from models import Link, LinkToken
from sync.api import schemas
from sync.errors import (
    ApiError,
    AuthenticationError,
    ConfigError,
    FintocSyncError,
    LinkError,
    RetriableError,
)
from sync.run.concurrency import run_bounded
from sync.run.context import Clock, Failure, RunContext, describe, utc_now
from sync.run.runs import RunLease, close_run
from sync.store import loaders, vault

log = logging.getLogger(__name__)


class LinkSource(Protocol):
    """What the pipeline needs from the API client."""

    def iter_links(self, status: str | None = None) -> Any: ...

    def get_link(self, link_token: str) -> dict[str, Any]: ...

    def iter_accounts(self, link_token: str) -> Any: ...


class AccountHook(Protocol):
    """Extra per-account work done inside the link's transaction (movements)."""

    def __call__(
        self, session: Session, link_token: str, account: schemas.Account, run: RunContext
    ) -> None: ...

    def sync_accounts(
        self,
        session: Session,
        link_token: str,
        accounts: Sequence[schemas.Account],
        run: RunContext,
    ) -> None:
        """The work of ``__call__`` for each of a link's accounts, in order."""


@dataclass
class SyncReport:
    """The outcome of a run, as the CLI reports it."""

    run_id: int
    status: str
    links_total: int
    links_synced: int
    failures: list[Failure]
    counts: dict[str, int]
    fatal: FintocSyncError | None = None

    @property
    def exit_code(self) -> int:
        """0 all synced, 1 some link failed, 2 configuration (a rejected or wrong key)."""
        if isinstance(self.fatal, AuthenticationError | ConfigError):
            return 2
        return 0 if self.status == "succeeded" else 1


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
    # Decrypted tokens are handed here (the composition root scrubs them from logs).
    register_secrets: Callable[[Iterable[str]], None] = lambda secrets: None

    def run(
        self, *, kind: str = "sync", link_id: str | None = None, read_list: bool = True
    ) -> SyncReport:
        """One full cycle (or one link with link_id). Never raises for per-link errors.

        ``read_list=False`` (with a link_id): skip ``GET /v1/links`` — every page of the
        organization's list — and read that link through its token
        (``GET /v1/links/{token}``), which has the same fields: what a webhook about one
        link needs, at the cost of one request instead of the whole list.
        """
        run = self._open_run(kind)
        fatal: FintocSyncError | None = None
        listed: dict[str, schemas.Link] = {}
        try:
            if read_list or link_id is None:
                listed = self._sync_link_list(run, only=link_id)
            self._sync_tokens(run, only=link_id, listed=listed)
            if link_id is not None:
                self._check_link_found(run, link_id, list(listed))
        except _ApiUnreachable:
            pass  # recorded as the list's failure; every token would fail the same way
        except (AuthenticationError, ConfigError) as exc:  # a wrong secret or vault key
            fatal = exc
            run.fail(Failure(None, *describe(exc)))
        except Exception as exc:  # a bug or the database: the run fails, but it is closed
            fatal = FintocSyncError(describe(exc)[1])
            run.fail(Failure(None, *describe(exc)))
        except BaseException:  # KeyboardInterrupt and the like: close, then let it go
            self.stop.set()
            self._close_run(run, list(listed), None)
            raise
        return self._close_run(run, list(listed), fatal)

    @staticmethod
    def _check_link_found(run: RunContext, link_id: str, listed: Sequence[str]) -> None:
        """`sync --link ID` for a link neither listed nor synced is a failure, not a success."""
        list_failed = any(f.kind.startswith("list:") for f in run.failures)
        touched = any(f.link_id == link_id for f in run.failures)
        if listed or list_failed or touched or run.counts.get("links_synced", 0):
            return
        run.fail(
            Failure(
                link_id,
                "NoSuchLink",
                "no such link: GET /v1/links does not list it and no registered token opens it",
            )
        )

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
        total = max(len(listed), synced + len(failed_links))
        counts = run.counts | {"links_total": total, "links_failed": len(failed_links)}
        close_run(
            self.sessions,
            run.lease,
            run.run_id,
            status=status,
            finished_at=self.clock(),
            counts=counts,
            failures=run.failures,
        )
        log.info("run %d: %d links synced, %d failed", run.run_id, synced, len(failed_links))
        return SyncReport(run.run_id, status, total, synced, run.failures, run.counts, fatal)

    # ---------------------------------------------------------------- phase 1: the list

    def _sync_link_list(self, run: RunContext, only: str | None) -> dict[str, schemas.Link]:
        """Read every page of GET /v1/links and upsert it; returns the listed links by id."""
        links: list[schemas.Link] = []
        clean = True
        try:
            for obj in self.client.iter_links():
                try:
                    links.append(schemas.parse_link(obj))
                except FintocSyncError as exc:
                    clean = False
                    run.fail(Failure(_guess_id(obj), *describe(exc)))
        except AuthenticationError:
            raise
        except FintocSyncError as exc:
            # Without the full list we cannot tell deleted links; tokens still sync.
            run.fail(Failure(None, "list:" + describe(exc)[0], describe(exc)[1]))
            if isinstance(exc, RetriableError):
                # Still down after the client's retries (5xx, timeout, refused): trying
                # every token now would only repeat those retries once per link.
                raise _ApiUnreachable from None
            return {}
        if only is not None:
            links = [link for link in links if link.id == only]
        try:
            with self.sessions.begin() as session:
                result = loaders.upsert_links(
                    session, links, run.now, run.run_id, complete=clean and only is None
                )
                loaders.touch_links(session, [link.id for link in links], run.now)
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise  # the database is gone, not one item: the run fails
            log.warning("the link list did not store in one piece; storing it link by link")
            links, result = self._store_links_one_by_one(run, links)
        run.add(transitions_written=result.transitions, links_deleted=result.deleted)
        log.info(
            "listed %d links (%d changed, %d status transitions, %d newly deleted)",
            len(links),
            result.changed,
            result.transitions,
            result.deleted,
        )
        return {link.id: link for link in links}

    def _store_links_one_by_one(
        self, run: RunContext, links: list[schemas.Link]
    ) -> tuple[list[schemas.Link], loaders.LinksResult]:
        """Each link in a savepoint: one the database refuses is dropped and reported.

        Nothing is marked deleted: with an item dropped the list is no longer complete.
        """
        stored: list[schemas.Link] = []
        total = loaders.LinksResult()
        with self.sessions.begin() as session:
            for link in links:
                try:
                    with session.begin_nested():
                        result = loaders.upsert_links(session, [link], run.now, run.run_id)
                except DBAPIError as exc:
                    if exc.connection_invalidated:
                        raise
                    run.fail(Failure.of(exc, link_id=link.id))
                    continue
                stored.append(link)
                total.changed += result.changed
                total.transitions += result.transitions
            loaders.touch_links(session, [link.id for link in stored], run.now)
        return stored, total

    # ---------------------------------------------------------------- phase 2: per link

    def _sync_tokens(
        self, run: RunContext, only: str | None, listed: dict[str, schemas.Link]
    ) -> None:
        if self.cipher is None:
            log.warning("no FINTOC_SYNC_ENCRYPTION_KEY: registered link tokens cannot be read")
            return
        undecryptable: list[str] = []
        with self.sessions() as session:
            stored = vault.load_tokens(session, self.cipher, skipped=undecryptable)
            self.register_secrets([t.token for t in stored])
            gone = set(session.scalars(select(Link.id).where(Link.deleted_at.is_not(None))))
            rejected = frozenset(
                session.scalars(
                    select(LinkToken.fingerprint).where(LinkToken.invalid_since.is_not(None))
                )
            )
        for fp in undecryptable:  # stored with another key: that token fails, the rest go on
            run.fail(Failure(None, "UndecryptableToken", _UNDECRYPTABLE, fp[:12]))
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
            lambda t: self._sync_one(run, t, only, rejected, listed),
            name="link",
            stop=self.stop,
        )

    def _sync_one(
        self,
        run: RunContext,
        token: vault.StoredToken,
        only: str | None,
        rejected: frozenset[str] = frozenset(),
        listed: dict[str, schemas.Link] | None = None,
    ) -> None:
        if self.stop.is_set():
            return
        payload: object = None
        try:
            link = (listed or {}).get(token.link_id or "")
            stored = link is not None  # phase 1 of this run wrote it (and its transition)
            if link is None:  # a token not yet matched to a listed link: ask which it is
                payload = self.client.get_link(token.token)
                link = schemas.parse_link(payload)
            if only is not None and link.id != only:
                return
            # The full account form (refreshed_at, next_refresh…), which the short form
            # embedded in GET /v1/links/{token} lacks (fintoc-api.md §3.2).
            accounts = [
                schemas.parse_account(obj, link.id)
                for obj in self.client.iter_accounts(token.token)
            ]
            self._load_link(run, token, link, accounts, link_stored=stored)
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
        token: vault.StoredToken,
        link: schemas.Link,
        accounts: list[schemas.Account],
        *,
        link_stored: bool = False,
    ) -> None:
        """Everything of one link in one transaction (its row too, unless ``link_stored``:
        this run's link list already wrote it, from the same object)."""
        now = self.clock()
        with self.sessions.begin() as session:
            links_result = loaders.LinksResult()
            if not link_stored:
                links_result = loaders.upsert_links(session, [link], now, run.run_id)
            acc_result = loaders.upsert_accounts(session, accounts, now, run.run_id)
            vault.bind_token(session, token.fingerprint, link.id, now)
            if self.account_hook is not None:
                self.account_hook.sync_accounts(session, token.token, accounts, run)
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
        self, run: RunContext, token: vault.StoredToken, exc: Exception, link_id: str | None
    ) -> None:
        kind, message = describe(exc)
        run.fail(Failure(link_id, kind, message, None if link_id else token.fingerprint[:12]))
        try:
            with self.sessions.begin() as session:
                if is_unknown_token(exc):
                    vault.mark_invalid(session, token.fingerprint, self.clock())
                if link_id is not None:
                    session.execute(
                        update(Link).where(Link.id == link_id).values(last_sync_error=message)
                    )
        except Exception:  # the database itself may be what failed
            log.warning("could not record the failure of link %s", link_id or "?")


_UNDECRYPTABLE = (
    "FINTOC_SYNC_ENCRYPTION_KEY cannot decrypt this stored token (it was stored with "
    "another key); `fintoc-sync links remove <ref>` forgets it"
)


class _ApiUnreachable(Exception):
    """The link list could not be read after retries: the run stops there."""


def is_unknown_token(exc: BaseException) -> bool:
    """The API answered 404 for a link token: unknown, revoked, or its link deleted."""
    return isinstance(exc, LinkError) and isinstance(exc, ApiError) and exc.status == 404


def failed_subjects(failures: Sequence[Failure]) -> set[str]:
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
