"""What the CLI commands do, apart from argument parsing: wiring and reporting."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from sqlalchemy import Engine, func, select

from models import Account, Institution, Link, LinkToken
from sync import tokens
from sync.client import FintocClient, RetryPolicy
from sync.config import Settings
from sync.db import SYNC_LOCK_NAME, make_sessionmaker, wait_session_lock
from sync.errors import ConfigError, Interrupted
from sync.logs import redaction_filter
from sync.pipeline import AccountHook, Pipeline, SyncReport, failed_subjects, utc_now
from sync.ratelimit import RateLimiter

log = logging.getLogger(__name__)


def build_client(
    settings: Settings,
    *,
    on_request: Callable[[str, int | None, int], None] | None = None,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] | None = None,
) -> FintocClient:
    """The API client for these settings, with one shared request-rate budget.

    ``sleep`` replaces time.sleep between retries (the daemon passes one that
    raises Interrupted when a stop is requested, so SIGTERM is not kept waiting).
    """
    key = settings.require_secret_key()
    redaction_filter().add_secrets([key])
    rate = settings.requests_per_second
    return FintocClient(
        settings.checked_api_url(),
        key,
        api_version=settings.api_version,
        timeout=settings.http_timeout,
        rate_limiter=RateLimiter(rate, burst=max(1, int(rate))),
        on_request=on_request,
        retry=retry
        or RetryPolicy(
            max_attempts=settings.max_attempts,
            cap=settings.backoff_cap,
            # a Retry-After above the cap is obeyed only up to the cap
            retry_after_cap=settings.retry_after_cap,
            retry_after_floor=min(0.5, settings.retry_after_cap),
        ),
        sleep=sleep or time.sleep,
    )


def build_pipeline(
    engine: Engine,
    settings: Settings,
    client: FintocClient,
    *,
    account_hook: AccountHook | None = None,
) -> Pipeline:
    """A pipeline for these settings (the cipher only if a key is configured)."""
    cipher = tokens.make_cipher(settings.encryption_key) if settings.encryption_key else None
    if account_hook is None:
        account_hook = _default_account_hook(client, settings)
    return Pipeline(
        client=client,
        sessions=make_sessionmaker(engine),
        cipher=cipher,
        concurrency=settings.concurrency,
        account_hook=account_hook,
    )


def _default_account_hook(client: FintocClient, settings: Settings) -> AccountHook | None:
    """Movements are synced per account when the movements module is present."""
    try:
        from sync.movements import MovementSync
    except ImportError:  # pragma: no cover - during bootstrap
        return None
    return MovementSync(
        client,
        lookback_days=settings.movements_lookback_days,
        initial_days=settings.movements_initial_days,
    )


def interruptible_sleep(stop: threading.Event) -> Callable[[float], None]:
    """A sleep that returns as time.sleep does, or raises Interrupted once stop is set."""

    def sleep(seconds: float) -> None:
        if stop.wait(seconds):
            raise Interrupted("stopping: a retry wait was cut short")

    return sleep


def run_sync_once(engine: Engine, settings: Settings, *, link_id: str | None = None) -> SyncReport:
    """`fintoc-sync sync`: wait for other syncs, then one cycle."""
    if settings.encryption_key is None:
        log.warning("FINTOC_SYNC_ENCRYPTION_KEY is unset: only the link list is synced")
    with build_client(settings) as client:
        pipeline = build_pipeline(engine, settings, client)
        with wait_session_lock(engine, SYNC_LOCK_NAME):
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


def links_add(engine: Engine, settings: Settings, raw: list[str], out: TextIO) -> int:
    """Register tokens encrypted; says how many were new, never shows them."""
    cipher = tokens.make_cipher(settings.require_encryption_key())
    redaction_filter().add_secrets(raw)
    with make_sessionmaker(engine).begin() as session:
        added = tokens.add_tokens(session, cipher, raw, utc_now())
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


def links_rotate_key(engine: Engine, settings: Settings, new_key_env: str, out: TextIO) -> int:
    """Re-encrypt every token under a new key in one transaction."""
    old = tokens.make_cipher(settings.require_encryption_key())
    new_raw = os.environ.get(new_key_env)
    if not new_raw:
        raise ConfigError(f"{new_key_env} is not set; put the new Fernet key there")
    new = tokens.make_cipher(new_raw)
    with make_sessionmaker(engine).begin() as session:
        count = tokens.rotate_key(session, old, new)
    print(
        f"re-encrypted {count} link token(s); set FINTOC_SYNC_ENCRYPTION_KEY to the new key now",
        file=out,
    )
    return 0
