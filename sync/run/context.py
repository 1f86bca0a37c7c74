"""What every run shares: the clock, its counters, and the one failure type."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sync.errors import FintocSyncError
from sync.redact import scrub
from sync.text import safe_text

if TYPE_CHECKING:
    from sync.run.runs import RunLease

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The real clock (tests inject their own)."""
    return datetime.now(UTC)


@dataclass
class Failure:
    """Something that could not be synced (a link, an account, a token, the list, the run),
    with a message safe to show and store. The one failure type of every run kind."""

    link_id: str | None
    kind: str
    message: str
    # A short, non-secret handle on the token (its fingerprint's start) when the link
    # id is not known yet, so the operator can tell which registered token failed.
    token_ref: str | None = None
    account_id: str | None = None

    def __post_init__(self) -> None:
        # Every field may come from outside (an id the API sent, its error message):
        # bounded and storable here, so no failure can stop its run from closing.
        self.kind = safe_text(self.kind, 100)
        self.message = safe_text(self.message)
        self.link_id = _optional(self.link_id)
        self.token_ref = _optional(self.token_ref)
        self.account_id = _optional(self.account_id)

    def as_json(self) -> dict[str, Any]:
        """The JSON stored in sync_runs.errors."""
        doc: dict[str, Any] = {"link_id": self.link_id, "kind": self.kind, "message": self.message}
        if self.account_id:
            doc["account_id"] = self.account_id
        return doc | ({"token_ref": self.token_ref} if self.token_ref else {})

    def subject(self) -> str:
        """Who failed, in words: an account, a link, a token not yet matched, the list, the run."""
        if self.account_id:
            return f"account {self.account_id}"
        if self.link_id:
            return f"link {self.link_id}"
        if self.token_ref:
            return f"token {self.token_ref}… (not yet matched to a link)"
        if self.kind.startswith("list:"):
            return "the link list"
        return "the run"

    @classmethod
    def of(
        cls,
        exc: BaseException,
        *,
        link_id: str | None = None,
        account_id: str | None = None,
        token_ref: str | None = None,
    ) -> Failure:
        """The failure an exception describes (scrubbed)."""
        kind, message = describe(exc)
        return cls(link_id, kind, message, token_ref=token_ref, account_id=account_id)


def _optional(value: str | None) -> str | None:
    return None if value is None else safe_text(value, 255)


@dataclass
class RunContext:
    """Counters and identity of one run, shared by its workers."""

    run_id: int
    now: datetime
    counts: dict[str, int] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    lease: RunLease | None = None

    def add(self, **counts: int) -> None:
        """Add to the run's counters (thread-safe)."""
        with self.lock:
            for key, value in counts.items():
                self.counts[key] = self.counts.get(key, 0) + value

    def fail(self, failure: Failure) -> None:
        """Record a failed link (thread-safe) and log it."""
        with self.lock:
            self.failures.append(failure)
        log.error("%s failed (%s): %s", failure.subject(), failure.kind, failure.message)


def describe(exc: BaseException) -> tuple[str, str]:
    """(kind, message) for an error, scrubbed of tokens and keys."""
    if isinstance(exc, FintocSyncError):
        return type(exc).__name__, scrub(str(exc))
    # Unexpected errors (a database fault, a bug): the class and a short reason. A
    # database error's text holds the SQL and its parameters, which analysts can read in
    # sync_runs.errors: only the server's primary message is kept, the rest goes to DEBUG.
    log.debug("unexpected error details: %s", scrub(safe_text(exc, 5000)))
    return type(exc).__name__, scrub(f"unexpected error: {_reason(exc)}")


def _reason(exc: BaseException) -> str:
    """A short reason without SQL: the driver's primary message, else the first line."""
    orig = getattr(exc, "orig", None)  # sqlalchemy.exc.DBAPIError wraps the driver's error
    primary = getattr(getattr(orig, "diag", None), "message_primary", None)
    if primary:
        return f"{type(orig).__name__}: {safe_text(primary, 200)}"
    if orig is not None:
        first = str(orig).strip().splitlines()
        return f"{type(orig).__name__}: {safe_text(first[0] if first else '', 200)}"
    first = str(exc).strip().splitlines()
    return safe_text(first[0] if first else "", 200)
