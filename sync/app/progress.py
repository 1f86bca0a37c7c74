"""Progress of a long command: a live line on a terminal, one log line per step otherwise."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sync.run.pipeline import AccountHook

log = logging.getLogger(__name__)


def format_duration(seconds: float) -> str:
    """``42s``, ``3m05s`` or ``2h07m``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


@dataclass
class Progress:
    """Counts chunks and movements of a backfill and shows rate and ETA.

    Only ids and counts are shown: never a token or a key.
    """

    accounts_total: int
    chunks_total: int
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    live: bool | None = None
    clock: Callable[[], float] = time.monotonic
    accounts_done: int = 0
    chunks_done: int = 0
    movements: int = 0

    def __post_init__(self) -> None:
        if self.live is None:
            self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self._started = self.clock()

    def line(self) -> str:
        """The current status: accounts, chunks, movements, rate and ETA."""
        elapsed = max(self.clock() - self._started, 1e-9)
        rate = self.movements / elapsed
        eta = "?"
        if self.chunks_done:
            left = self.chunks_total - self.chunks_done
            eta = format_duration(elapsed / self.chunks_done * left)
        return (
            f"accounts {self.accounts_done}/{self.accounts_total} · "
            f"chunks {self.chunks_done}/{self.chunks_total} · "
            f"{self.movements:,} movements · {rate:,.0f}/s · ETA {eta}"
        )

    def chunk_done(self, account_id: str, since: str, until: str, movements: int) -> None:
        """One chunk committed."""
        self.chunks_done += 1
        self.movements += movements
        if self.live:
            self.stream.write("\r\x1b[2K" + self.line())
            self.stream.flush()
        else:
            log.info(
                "chunk %s [%s, %s): %d movements — %s",
                account_id,
                since,
                until,
                movements,
                self.line(),
            )

    def account_done(self, skipped_chunks: int = 0) -> None:
        """One account finished (or failed); its unread chunks leave the total."""
        self.accounts_done += 1
        self.chunks_total -= skipped_chunks

    def finish(self) -> None:
        """End the live line."""
        if self.live:
            self.stream.write("\r\x1b[2K" + self.line() + "\n")
            self.stream.flush()


@dataclass
class SyncProgress:
    """A live line for a long `sync` on a terminal: links started of those registered,
    accounts synced, elapsed time. Off a terminal it prints nothing (the pipeline already
    logs one line per link). Fed by wrapping the per-account hook, so the run layer
    needs no progress API of its own."""

    links_total: int
    stream: TextIO = field(default_factory=lambda: sys.stderr)
    live: bool | None = None
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        if self.live is None:
            self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self._started = self.clock()
        self._links: set[str] = set()
        self._accounts = 0
        self._lock = threading.Lock()

    def line(self) -> str:
        """``links 3/40 · accounts 7 · 12s``."""
        elapsed = format_duration(self.clock() - self._started)
        return (
            f"links {len(self._links)}/{self.links_total} · accounts {self._accounts} · {elapsed}"
        )

    def account(self, link_key: str) -> None:
        """One account of a link is being synced."""
        with self._lock:
            self._links.add(link_key)
            self._accounts += 1
            if self.live:
                self.stream.write("\r\x1b[2K" + self.line())
                self.stream.flush()

    def wrap(self, hook: AccountHook) -> AccountHook:
        """The same per-account hook, counted."""
        return _Counted(hook, self)

    def finish(self) -> None:
        """End the live line."""
        if self.live and (self._accounts or self._links):
            self.stream.write("\r\x1b[2K" + self.line() + "\n")
            self.stream.flush()


class _Counted:
    """An account hook whose accounts count on a :class:`SyncProgress` line as they end."""

    def __init__(self, hook: AccountHook, progress: SyncProgress) -> None:
        self.hook, self.progress = hook, progress

    def __call__(self, session: Any, link_token: str, account: Any, run: Any) -> None:
        self.hook(session, link_token, account, run)
        self._count(link_token, account)

    def sync_accounts(
        self, session: Any, link_token: str, accounts: Sequence[Any], run: Any
    ) -> None:
        self.hook.sync_accounts(session, link_token, accounts, run)
        for account in accounts:
            self._count(link_token, account)

    def _count(self, link_token: str, account: Any) -> None:
        self.progress.account(str(getattr(account, "link_id", None) or id(link_token)))
