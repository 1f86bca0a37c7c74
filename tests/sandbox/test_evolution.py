"""Determinism and how the world evolves when the clock advances."""

from __future__ import annotations

from typing import Any

import httpx

from sync.sandbox import Sandbox, World
from sync.sandbox.movements import MovementSource
from tests.sandbox.helpers import SEED_TOKEN, documented_link


def balances(world: World) -> dict[str, Any]:
    """Account id → balance dict, from the truth."""
    return {a["id"]: a["balance"] for a in world.truth(movements=False)["accounts"]}


def all_movements(world: World) -> dict[str, dict[str, Any]]:
    """Movement id → movement (with the removed flag), across accounts."""
    return {m["id"]: m for ms in world.truth(movements=True)["movements"].values() for m in ms}


def test_same_seed_same_truth() -> None:
    """Two worlds with one seed agree exactly, before and after advancing."""
    a = World(seed=42, n_links=3)
    first = a.truth()
    MovementSource.clear_cache()  # the second world must regenerate, not reuse
    b = World(seed=42, n_links=3)
    assert first == b.truth()
    a.advance(days=2)
    b.advance(days=2)
    assert a.truth() == b.truth()


def test_different_seed_different_truth() -> None:
    """Another seed yields other data."""
    assert World(seed=42, n_links=1).truth() != World(seed=43, n_links=1).truth()


def test_generated_org_is_deterministic() -> None:
    """n_links worlds are deterministic too, ids and tokens included."""
    assert World(seed=9, n_links=40).truth(False) == World(seed=9, n_links=40).truth(False)


def test_evolution_ignores_how_advances_are_split() -> None:
    """advance(days=2) equals eight advances of six hours."""
    a, b = World(seed=42), World(seed=42)
    a.advance(days=2)
    for _ in range(8):
        b.advance(hours=6)
    assert a.truth() == b.truth()


def test_advance_changes_some_balances_not_all() -> None:
    """After a day some balances moved and the others are identical."""
    world = World(seed=42)
    before = balances(world)
    world.advance(days=1)
    after = balances(world)
    changed = [k for k in before if before[k] != after[k]]
    assert 0 < len(changed) < len(before)


def test_seed_link_is_stable_through_the_first_advance(sandbox: Sandbox) -> None:
    """The documented link still serves its exact payload after a one-day advance."""
    sandbox.advance(days=1)
    headers = {"Authorization": sandbox.secret_key}
    served = httpx.get(f"{sandbox.url}/v1/links/{SEED_TOKEN}", headers=headers).json()
    assert served == {**documented_link(), "link_token": None}


def test_advance_flips_and_deletes_links() -> None:
    """Within two days a link goes login_required and another is deleted."""
    world = World(seed=42)
    statuses = []
    for _ in range(8):
        world.advance(hours=6)
        statuses.append(world.links["link_Mj4kLs8PqWe2Rt6Y"].status)
    assert "login_required" in statuses and statuses[-1] == "active"
    assert world.links["link_Dd5fGh7JkL9zXc1V"].deleted_at is not None
    assert "link_Dd5fGh7JkL9zXc1V" not in [x.id for x in world.list_links()]


def test_advance_brings_new_movements_and_late_postings() -> None:
    """New movements arrive, some posted days before the clock (late postings)."""
    world = World(seed=42)
    before = all_movements(world)
    world.advance(days=3)
    new = {k: m for k, m in all_movements(world).items() if k not in before}
    assert new
    assert any(m["post_date"][:10] < "2026-11-01" for m in new.values())


def test_pending_checks_resolve() -> None:
    """A check pending now is confirmed or reversed a few days later."""
    world = World(seed=42)
    pending = {k for k, m in all_movements(world).items() if m["status"] == "pending"}
    assert pending
    world.advance(days=4)
    later = all_movements(world)
    assert {later[k]["status"] for k in pending} <= {"confirmed", "reversed"}


def test_some_movement_is_removed_after_advancing() -> None:
    """A one-day advance removes a movement: truth flags it and it is no longer served."""
    world = World(seed=42)
    world.advance(days=1)
    removed = [m for m in all_movements(world).values() if m["removed"]]
    assert removed
    gone = removed[0]["id"]
    assert not any(world.movement(a, gone) for a in world.accounts.values())


def test_clock_never_goes_back() -> None:
    """advance() refuses negative durations."""
    try:
        World().advance(hours=-1)
    except ValueError:
        return
    raise AssertionError("negative advance accepted")
