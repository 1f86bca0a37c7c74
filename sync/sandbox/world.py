"""The sandbox's truth: links, accounts, lazily generated movements, and the clock.

Evolution is tick-based: the clock moves in ``advance`` and every 6-hour tick crossed
(at absolute times ``EPOCH + k * TICK``) applies changes decided by ``(seed, k)``. So
the state depends only on the seed and the clock, not on how the advances were split.

What a tick does, per link that is not deleted (the seed example link is frozen for its
first 7 days so its payload stays exactly the documented one):

* a scripted change, if the catalog scheduled one for this tick, else small random
  chances: ``active`` → ``login_required``, back to ``active``, or deletion;
* for links that are active and healthy: ``last_time_refreshed`` and each account's
  ``refreshed_at`` become the tick time, and each account's balance changes with the
  account's ``volatility`` probability (others keep the identical balance).

Movements evolve by themselves as a function of the clock (see ``movements.py``): new
ones arrive, late postings appear with old post dates, pending checks resolve to
confirmed or reversed, and about 3% are later removed.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from datetime import date, datetime, timedelta
from typing import Any

from sync.sandbox import _rand, generate, render
from sync.sandbox.catalog import SCRIPTED_REMOVALS, default_org
from sync.sandbox.clock import EPOCH, TICK, fmt_ts, parse_ts
from sync.sandbox.model import Account, Balance, Link
from sync.sandbox.movements import Movement, MovementSource
from sync.sandbox.realtime import Intent, Realtime, refresh_intent_data

_CREDIT_TYPES = ("line_of_credit", "credit_card")
_CHANGED_KEYS = (
    "id",
    "type",
    "amount",
    "status",
    "currency",
    "post_date",
    "description",
    "pending",
)
#: ``truth()`` lists movements by default only for orgs up to this many accounts.
TRUTH_MOVEMENTS_MAX_ACCOUNTS = 200


#: Movements change within ~15 days of their post date (late postings ≤ 8 days, checks
#: resolve within 60 h, removals within 4 days of arriving); older days never change.
_CHANGE_HORIZON_DAYS = 20


class _ServedCache:
    """The shaped org's memory: recent movement lists by query, JSON by (id, status)."""

    MAX_LISTS = 256

    def __init__(self) -> None:
        self.lists: OrderedDict[tuple[object, ...], list[Movement]] = OrderedDict()
        self.rendered: dict[tuple[str, str], bytes] = {}
        self._lock = threading.Lock()

    def keep(self, key: tuple[object, ...], found: list[Movement]) -> None:
        with self._lock:
            self.lists[key] = found
            if len(self.lists) > self.MAX_LISTS:
                self.lists.popitem(last=False)


class World:
    """All sandbox state. Public methods are thread-safe (one re-entrant lock)."""

    def __init__(
        self, seed: int = 42, n_links: int | None = None, shape: generate.Shape | None = None
    ) -> None:
        self.seed = seed
        self.now = EPOCH
        self.tick = 0
        self.lock = threading.RLock()
        if shape is not None and n_links is None:
            raise ValueError("a shape needs a number of links")
        pairs = default_org() if n_links is None else generate.links(seed, n_links, shape)
        self.links: dict[str, Link] = {}
        self.accounts: dict[str, Account] = {}
        for link, accounts in pairs:
            link.account_ids = [a.id for a in accounts]
            self.links[link.id] = link
            self.accounts.update((a.id, a) for a in accounts)
        self._by_token = {link.token: link.id for link in self.links.values()}
        self.movement_source = MovementSource(seed, EPOCH)
        #: A shaped (benchmark) org serves from memory: every generated day stays cached,
        #: the last queries' movement lists and each movement's JSON are kept, so after
        #: ``warm()`` the sandbox costs the clients little CPU (it is the wire, not the load).
        self._served: _ServedCache | None = None
        if shape is not None:
            self.movement_source.reserve(len(self.accounts) * (shape.history_days + 2))
            self._served = _ServedCache()
        self.movement_source.removals = self._scripted_removals()
        self.realtime = Realtime()  # webhook events, exchange tokens, refresh intents

    def _scripted_removals(self) -> dict[str, datetime]:
        """Movement id → when the catalog makes the bank remove it."""
        removals = {}
        for account_id, rank, delay in SCRIPTED_REMOVALS:
            account = self.accounts.get(account_id)
            if account is not None:
                shown = self.movements(account, since=EPOCH.date() - timedelta(days=7))
                if len(shown) > rank:
                    removals[shown[rank].id] = EPOCH + delay
        return removals

    # -- queries -------------------------------------------------------------------

    def link_tokens(self) -> list[str]:
        """Tokens of every link that currently exists, in list order (newest first)."""
        with self.lock:
            return [link.token for link in self.list_links()]

    def list_links(self, status: str | None = None) -> list[Link]:
        """Existing links, newest first, optionally filtered by status."""
        with self.lock:
            live = [x for x in self.links.values() if x.deleted_at is None]
            if status is not None:
                live = [x for x in live if x.status == status]
            return sorted(live, key=lambda x: (x.created_at[:19], x.id), reverse=True)

    def link_by_token(self, token: str) -> Link | None:
        """The existing link with this token (deleted links' tokens are invalid)."""
        with self.lock:
            link = self.links.get(self._by_token.get(token, ""))
            return link if link is not None and link.deleted_at is None else None

    def link_by_id(self, link_id: str) -> Link | None:
        """The existing link with this id."""
        with self.lock:
            link = self.links.get(link_id)
            return link if link is not None and link.deleted_at is None else None

    def accounts_of(self, link: Link) -> list[Account]:
        """The link's accounts, in catalog order."""
        with self.lock:
            return [self.accounts[a] for a in link.account_ids]

    def account_of(self, link: Link, account_id: str) -> Account | None:
        """The account if it belongs to the link."""
        with self.lock:
            return self.accounts.get(account_id) if account_id in link.account_ids else None

    def next_refresh(self, link: Link) -> str | None:
        """When the account will next refresh; null when the link does not refresh."""
        if not link.active or link.status != "active":
            return None
        return fmt_ts(EPOCH + (self.tick + 1) * TICK)

    def served_refreshed_at(self, account: Account) -> str | None:
        """``refreshed_at`` as served: Fintoc's data of an account changes only when Fintoc
        refreshes it, so the sandbox never reports a refresh older than the last change of
        the account's movements (one arriving, resolving or being removed)."""
        if account.refreshed_at is None:
            return None  # the initial load is still running
        with self.lock:
            now = self.now
        latest = parse_ts(account.refreshed_at)
        first = now.date() - timedelta(days=_CHANGE_HORIZON_DAYS)
        for mov in self.movement_source.newest_first(account, first, now.date()):
            for moment in (mov.available_at, mov.resolve_at, mov.removed_at):
                if moment is not None and latest < moment <= now:
                    latest = moment
        for moment in self.movement_source.removals.values():  # scripted, any age
            if latest < moment <= now:
                latest = moment
        return account.refreshed_at if latest == parse_ts(account.refreshed_at) else fmt_ts(latest)

    def movements(
        self,
        account: Account,
        since: date | None = None,
        until: date | None = None,
        confirmed_only: bool = True,
    ) -> list[Movement]:
        """Visible movements, post_date in ``[since, until)``, newest first."""
        with self.lock:
            now = self.now
        last = now.date() if until is None else min(now.date(), until - timedelta(days=1))
        first = account.history_start if since is None else since
        key = (account.id, now, first, last, confirmed_only)
        if self._served is not None:
            cached = self._served.lists.get(key)
            if cached is not None:
                return cached
        found = []
        for mov in self.movement_source.newest_first(account, first, last):
            if not mov.visible(now):
                continue
            if confirmed_only and mov.status(now) != "confirmed":
                continue
            found.append(mov)
        if self._served is not None:
            self._served.keep(key, found)
        return found

    def movements_json(self, page: list[Movement]) -> bytes | None:
        """A page of movements as JSON bytes from the shaped org's cache (else None)."""
        if self._served is None:
            return None
        now, rendered = self.now, self._served.rendered
        parts = []
        for mov in page:
            key = (mov.id, mov.status(now))
            part = rendered.get(key)
            if part is None:
                body = json.dumps(mov.to_json(now), ensure_ascii=False, separators=(",", ":"))
                part = rendered[key] = body.encode()
            parts.append(part)
        return b"[" + b",".join(parts) + b"]"

    def warm(self) -> int:
        """Generate and render every movement of a shaped org now; the count served."""
        total = 0
        for account in list(self.accounts.values()):
            found = self.movements(account, confirmed_only=False)
            self.movements_json(found)
            total += len(found)
        return total

    def movement_count(self) -> int:
        """Movements served now (any status) over the accounts of existing links."""
        return sum(
            len(self.movements(account, confirmed_only=False))
            for link in self.list_links()
            for account in self.accounts_of(link)
        )

    def movement(self, account: Account, movement_id: str) -> Movement | None:
        """One visible movement of the account, whatever its status."""
        for mov in self.movements(account, confirmed_only=False):
            if mov.id == movement_id:
                return mov
        return None

    # -- mutations -----------------------------------------------------------------

    def set_active(self, link: Link, active: bool) -> None:
        """PATCH ``active``: false ⇒ status ``inactive``; true ⇒ ``active``."""
        with self.lock:
            link.active = active
            link.status = "active" if active else "inactive"

    def delete(self, link: Link) -> None:
        """DELETE: the link leaves the list and its token stops working."""
        with self.lock:
            link.deleted_at = self.now

    def advance(self, hours: float = 0, days: float = 0) -> None:
        """Move the clock forward, applying every tick crossed (and pending refresh intents)."""
        delta = timedelta(hours=hours, days=days)
        if delta < timedelta(0):
            raise ValueError("the sandbox clock only moves forward")
        with self.lock:
            self.now += delta
            target = int((self.now - EPOCH) / TICK)
            while self.tick < target:
                self.tick += 1
                self._apply_tick(self.tick)
            for intent in self.realtime.pending_intents():
                self._finish_intent(intent)

    def create_link(self) -> tuple[Link, str]:
        """A newly connected link (announced by ``link.created``) and its exchange token."""
        with self.lock:
            link, accounts, exchange = self.realtime.new_link(self.seed, self.now)
            self.links[link.id] = link
            self.accounts.update((a.id, a) for a in accounts)
            self._by_token[link.token] = link.id
            self.realtime.link_created(link, accounts)
            return link, exchange

    def exchange(self, exchange_token: str) -> Link | None:
        """The link of a one-time exchange token (None if unknown or already used)."""
        with self.lock:
            link_id = self.realtime.exchange_tokens.pop(exchange_token, None)
            return None if link_id is None else self.link_by_id(link_id)

    def request_refresh(self, link: Link, kind: str = "only_last") -> Intent:
        """POST /v1/refresh_intents (refusals raise the API error)."""
        with self.lock:
            return self.realtime.create_intent(link, kind, self.now)

    def _finish_intent(self, intent: Intent) -> None:
        link = self.links[intent.link_id]
        intent.status, intent.finished_at = "succeeded", self.now
        stamp = fmt_ts(self.now)
        link.last_time_refreshed = stamp
        for account in self.accounts_of(link):
            account.refreshed_at = stamp
            data = refresh_intent_data(account, "succeeded", self.now, 0, intent.type)
            self.realtime.announce("account.refresh_intent.succeeded", data)

    # -- evolution -----------------------------------------------------------------

    def _apply_tick(self, k: int) -> None:
        at = EPOCH + k * TICK
        for link in self.links.values():
            if link.deleted_at is not None:
                continue
            if link.frozen_until is not None and at < link.frozen_until:
                continue
            self._evolve_status(link, k, at)
            if link.deleted_at is None and link.active and link.status == "active":
                self._refresh(link, k, at)

    def _evolve_status(self, link: Link, k: int, at: datetime) -> None:
        action = link.script.get(k)
        if action is None and link.active and not link.legacy:
            action = self._random_action(link, k)
        if action == "delete":
            link.deleted_at = at
        elif action in ("active", "login_required"):
            changed = link.status != action
            link.status = action
            if changed and action == "login_required":
                self.realtime.announce("link.credentials_changed", render.link(link, None))

    def _random_action(self, link: Link, k: int) -> str | None:
        u = _rand.unit(self.seed, "status", link.id, k)
        if link.status == "active" and u < link.flip_rate:
            return "login_required"
        if link.status == "login_required" and u < link.recover_rate:
            return "active"
        if _rand.unit(self.seed, "delete", link.id, k) < link.delete_rate:
            return "delete"
        return None

    def _refresh(self, link: Link, k: int, at: datetime) -> None:
        millis = int(_rand.unit(self.seed, "ms", link.id, k) * 1000)
        stamp = fmt_ts(at + timedelta(milliseconds=millis))
        link.last_time_refreshed = stamp
        link.refresh_status = "idle"
        for account in self.accounts_of(link):
            account.refreshed_at = stamp
            if _rand.unit(self.seed, "balance", account.id, k) < account.volatility:
                account.balance = self._moved_balance(account, k)
            if self.realtime.emit is not None:
                self._announce_refresh(account, at)

    def _announce_refresh(self, account: Account, at: datetime) -> None:
        """The per-account events of a scheduled refresh at ``at`` (recent post dates)."""
        since, new, modified, removed = at - TICK, 0, [], []
        first = at.date() - timedelta(days=20)
        for mov in self.movement_source.newest_first(account, first, at.date()):
            if since < mov.available_at <= at:
                new += 1
            if mov.resolve_at is not None and since < mov.resolve_at <= at:
                modified.append(mov.to_json(at))
            if mov.removed_at is not None and since < mov.removed_at <= at:
                removed.append(mov.id)
        data = refresh_intent_data(account, "succeeded", at, new)
        self.realtime.announce("account.refresh_intent.succeeded", data)
        if modified:
            changed = [{k: m.get(k) for k in _CHANGED_KEYS} for m in modified]
            self.realtime.announce(
                "account.refresh_intent.movements_modified",
                {"account_id": account.id, "movements_changed": changed},
            )
        if removed:
            self.realtime.announce(
                "account.refresh_intent.movements_removed",
                {"account_id": account.id, "movements_removed": removed},
            )

    def _moved_balance(self, account: Account, k: int) -> Balance:
        r = _rand.rng(self.seed, "delta", account.id, k)
        old = account.balance
        step = max(1000, abs(old.current) // 20)
        delta = r.randint(1, step) * r.choice([-1, 1])
        if account.type in _CREDIT_TYPES:
            value = min(max(old.available + delta, 0), old.limit)
            return Balance(value, value, old.limit)
        return Balance(old.available + delta, old.current + delta, old.limit + delta)

    # -- truth ---------------------------------------------------------------------

    def truth(self, movements: bool | None = None) -> dict[str, Any]:
        """A JSON-able snapshot of everything, for invariant checks."""
        with self.lock:
            if movements is None:
                movements = len(self.accounts) <= TRUTH_MOVEMENTS_MAX_ACCOUNTS
            snapshot: dict[str, Any] = {
                "seed": self.seed,
                "clock": fmt_ts(self.now),
                "tick": self.tick,
                "links": [self._link_truth(x) for x in self.links.values()],
                "accounts": [self._account_truth(a) for a in self.accounts.values()],
            }
            if movements:
                snapshot["movements"] = {
                    a.id: self._movements_truth(a) for a in self.accounts.values()
                }
            if self.realtime.report is not None:
                snapshot["webhooks"] = self.realtime.report()
            return snapshot

    def _link_truth(self, link: Link) -> dict[str, Any]:
        payload = render.link(link, None)
        payload.update(
            link_token=link.token,
            status=link.status,
            active=link.active,
            refresh_status=link.refresh_status,
            last_time_refreshed=link.last_time_refreshed,
            legacy=link.legacy,
            deleted=link.deleted_at is not None,
            deleted_at=None if link.deleted_at is None else fmt_ts(link.deleted_at),
            account_ids=list(link.account_ids),
        )
        return payload

    def _account_truth(self, account: Account) -> dict[str, Any]:
        payload = render.account(account, full=True)
        payload["link_id"] = account.link_id
        return payload

    def _movements_truth(self, account: Account) -> list[dict[str, Any]]:
        now = self.now
        out = []
        for mov in self.movement_source.newest_first(account, account.history_start, now.date()):
            if mov.available_at > now:
                continue
            item = mov.to_json(now)
            item["removed"] = not mov.visible(now)
            out.append(item)
        return out
