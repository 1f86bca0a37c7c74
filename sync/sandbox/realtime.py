"""What the sandbox announces and what it does on demand: events, exchange, refresh intents.

* ``EventFeed`` turns world changes into Fintoc events (fintoc-api.md §3.6): a new link →
  ``link.created`` (with its ``link_token``), a link going to ``login_required`` →
  ``link.credentials_changed``, an account refresh → ``account.refresh_intent.succeeded``
  (per account, with ``new_movements``), pending movements resolving →
  ``…movements_modified``, movements the bank deleted → ``…movements_removed``.
* ``GET /v1/links/exchange``: an exchange token (from ``POST /_sandbox/links``) is good for
  one exchange and returns the Link with its ``link_token``.
* ``POST /v1/refresh_intents`` (§2.3): one in progress per link
  (``refresh_intent_in_progress``), a 5-min (``only_last``) / 60-min (``historical``)
  cooldown after a success (``rate_limit_exceeded``), ``rejected_refresh_intent`` for a
  link whose credentials are invalid, ``on_demand_policy_required`` when the org's plan
  lacks it. Intents succeed at the next clock advance.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sync.sandbox import generate, render
from sync.sandbox.clock import fmt_ts
from sync.sandbox.model import Account, Link
from sync.sandbox.wire import ApiError

Emit = Callable[[str, dict[str, Any]], object]
COOLDOWN = {"only_last": timedelta(minutes=5), "historical": timedelta(minutes=60)}


def refresh_intent_data(
    account: Account, status: str, at: datetime, new_movements: int, kind: str = "only_last"
) -> dict[str, Any]:
    """The RefreshIntent ``data`` of an ``account.refresh_intent.*`` event."""
    return {
        "object": "refresh_intent",
        "refreshed_object": "account",
        "refreshed_object_id": account.id,
        "status": status,
        "created_at": fmt_ts(at),
        "type": kind,
        "new_movements": new_movements,
        "public_error": None,
    }


@dataclass
class Intent:
    """One refresh intent of a link."""

    id: str
    link_id: str
    type: str
    status: str
    created_at: datetime
    finished_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """The RefreshIntent object."""
        return {
            "id": self.id,
            "object": "refresh_intent",
            "created_at": fmt_ts(self.created_at),
            "refreshed_object": "link",
            "refreshed_object_id": self.link_id,
            "requires_mfa": None,
            "status": self.status,
            "type": self.type,
        }


@dataclass
class Realtime:
    """Per-world state of events, exchanges and refresh intents (guarded by world.lock)."""

    emit: Emit | None = None
    #: what the deliverer did with each event (``truth()["webhooks"]``), when it delivers
    report: Callable[[], list[dict[str, Any]]] | None = None
    on_demand: bool = True
    exchange_tokens: dict[str, str] = field(default_factory=dict)
    intents: dict[str, list[Intent]] = field(default_factory=dict)
    created: int = 0

    def announce(self, event_type: str, data: dict[str, Any]) -> None:
        """Deliver an event if a webhook URL is configured."""
        if self.emit is not None:
            self.emit(event_type, data)

    # ---------------------------------------------------------------- new links

    def new_link(self, seed: int, now: datetime) -> tuple[Link, list[Account], str]:
        """A freshly connected link, its accounts and a one-time exchange token."""
        self.created += 1
        # unique per (clock hour, count): a sandbox restarted later (the demo, every run)
        # connects links Fintoc never showed before, as Fintoc would
        hour = int(now.timestamp()) // 3600
        link, accounts = generate._link(seed ^ 0x5EED, 1_000_000 + hour * 1000 + self.created)
        link.status, link.active, link.delete_rate, link.flip_rate = "active", True, 0.0, 0.0
        link.created_at = fmt_ts(now)
        link.account_ids = [a.id for a in accounts]
        exchange = "exch_" + secrets.token_urlsafe(18)
        self.exchange_tokens[exchange] = link.id
        return link, accounts, exchange

    def link_created(self, link: Link, accounts: list[Account]) -> None:
        """``link.created``: the Link with accounts and, only here, its link_token."""
        data = render.link(link, accounts)
        data["link_token"] = link.token
        self.announce("link.created", data)

    # ---------------------------------------------------------------- refresh intents

    def create_intent(self, link: Link, kind: str, now: datetime) -> Intent:
        """POST /v1/refresh_intents, with the documented refusals."""
        if not self.on_demand:
            raise ApiError(
                422,
                "invalid_request_error",
                "on_demand_policy_required",
                "Your organization's plan does not include on-demand refreshes",
            )
        if link.status != "active" or not link.active:
            raise ApiError(
                422,
                "link_error",
                "rejected_refresh_intent",
                "The institution indicated that the credentials are invalid. "
                "You need to reconnect the account.",
            )
        history = self.intents.setdefault(link.id, [])
        if any(i.status == "created" for i in history):
            raise ApiError(
                422,
                "invalid_request_error",
                "refresh_intent_in_progress",
                "There is already a refresh intent in progress for this Link",
            )
        done = [i for i in history if i.status == "succeeded" and i.finished_at is not None]
        if done and now - done[-1].finished_at < COOLDOWN[done[-1].type]:  # type: ignore[operator]
            minutes = int(COOLDOWN[done[-1].type].total_seconds() // 60)
            raise ApiError(
                400,
                "invalid_request_error",
                "rate_limit_exceeded",
                "This Link was recently refreshed.You have to wait at least "
                f"{minutes} minutes between refresh intents",
            )
        intent = Intent("ri_" + secrets.token_hex(10), link.id, kind, "created", now)
        history.append(intent)
        return intent

    def pending_intents(self) -> list[Intent]:
        """Intents still in progress."""
        return [i for v in self.intents.values() for i in v if i.status == "created"]
