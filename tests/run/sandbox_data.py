"""Look up sandbox movements with a given future (late posting, pending check, removal)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, timedelta

from sync.sandbox import Sandbox
from sync.sandbox.model import Account
from sync.sandbox.movements import Movement


def synced_accounts(sb: Sandbox) -> list[Account]:
    """Accounts of links that the pipeline syncs (every existing link)."""
    world = sb.world
    return [a for link in world.list_links() for a in world.accounts_of(link)]


def api_ids(sb: Sandbox, account_id: str, since: date) -> set[str]:
    """Ids the API serves now for an account with post_date >= since (all statuses)."""
    account = sb.world.accounts[account_id]
    return {m.id for m in sb.world.movements(account, since=since, confirmed_only=False)}


def generated(sb: Sandbox, first: date, last: date) -> Iterator[Movement]:
    """Generated movements (visible or not) with post_date in [first, last], of stable links."""
    world = sb.world
    for account in synced_accounts(sb):
        link = world.links[account.link_id]
        if "delete" in link.script.values() or link.delete_rate > 0:
            continue  # its link would vanish when the clock moves on
        yield from sb.world.movement_source.newest_first(account, first, last)


def find(sb: Sandbox, days_back: int, wanted: Callable[[Movement], bool]) -> Movement:
    """The first generated movement of the last days_back days that satisfies wanted."""
    today = sb.world.now.date()
    for mov in generated(sb, today - timedelta(days=days_back), today):
        if wanted(mov):
            return mov
    raise LookupError("no such movement in this seed")
