"""Movements: date window semantics, ordering, confirmed_only, object shape."""

from __future__ import annotations

from typing import Any

import httpx

from tests.sandbox.helpers import SEED_TOKEN

ACCOUNT = "acc_Z6AwnGn4idL7DPj4"
URL = f"/v1/accounts/{ACCOUNT}/movements"
FIELDS = {
    "id",
    "object",
    "amount",
    "comment",
    "currency",
    "description",
    "pending",
    "post_date",
    "recipient_account",
    "reference_id",
    "sender_account",
    "status",
    "transaction_date",
    "type",
}


def fetch(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    """Every movement for the params, 300 per page."""
    query = {"link_token": SEED_TOKEN, "per_page": 300, **params}
    items: list[dict[str, Any]] = []
    page = 1
    while True:
        batch = client.get(URL, params={**query, "page": page}).json()
        if not batch:
            return items
        items += batch
        page += 1


def test_movement_shape(client: httpx.Client) -> None:
    """Every movement has exactly the documented fields, with Fintoc's value types."""
    items = fetch(client, confirmed_only="false")
    assert len(items) > 10, "the account should have a history to check"
    for m in items:
        assert set(m) == FIELDS
        assert m["object"] == "movement" and isinstance(m["amount"], int)
        assert m["post_date"].endswith(("T00:00:00.000Z", "T00:00:00Z"))
        assert m["pending"] == (m["status"] == "pending")


def test_movements_cover_the_variety(client: httpx.Client) -> None:
    """History mixes transfers both ways, checks, nulls and both timestamp spellings."""
    items = fetch(client, confirmed_only="false")
    assert 300 < len(items) < 3000
    assert {"transfer", "check", "other"} <= {m["type"] for m in items}
    assert any(m["sender_account"] for m in items) and any(m["recipient_account"] for m in items)
    assert any(m["transaction_date"] is None for m in items)
    assert any(m["reference_id"] is None for m in items)
    assert {m["post_date"].endswith(".000Z") for m in items} == {True, False}
    assert any(m["amount"] < 0 for m in items) and any(m["amount"] > 0 for m in items)


def test_newest_first(client: httpx.Client) -> None:
    """Movements are ordered by post_date descending."""
    dates = [m["post_date"][:10] for m in fetch(client)]
    assert dates == sorted(dates, reverse=True)


def test_since_is_inclusive_and_until_exclusive(client: httpx.Client) -> None:
    """since keeps post_date >= since; until drops post_date == until."""
    items = fetch(client, since="2026-10-01", until="2026-10-15")
    dates = {m["post_date"][:10] for m in items}
    assert items and min(dates) >= "2026-10-01" and max(dates) < "2026-10-15"
    assert "2026-10-01" in dates
    on_until = fetch(client, since="2026-10-15", until="2026-10-16")
    assert on_until and all(m["post_date"][:10] == "2026-10-15" for m in on_until)
    assert not {m["id"] for m in on_until} & {m["id"] for m in items}


def test_windows_partition_the_history(client: httpx.Client) -> None:
    """Adjacent [since, until) windows add up to the whole history, without overlap."""
    whole = {m["id"] for m in fetch(client, since="2026-09-01")}
    first = {m["id"] for m in fetch(client, since="2026-09-01", until="2026-10-01")}
    second = {m["id"] for m in fetch(client, since="2026-10-01")}
    assert first | second == whole and not first & second


def test_confirmed_only_defaults_to_true(client: httpx.Client) -> None:
    """Without the flag only confirmed movements are listed; false adds the rest."""
    default = fetch(client)
    everything = fetch(client, confirmed_only="false")
    assert {m["status"] for m in default} == {"confirmed"}
    assert {m["status"] for m in everything} > {"confirmed"}
    assert {m["id"] for m in default} < {m["id"] for m in everything}


def test_get_one_movement(client: httpx.Client) -> None:
    """GET /movements/{id} returns the same object as the list."""
    listed = fetch(client, since="2026-10-20")[0]
    got = client.get(f"{URL}/{listed['id']}", params={"link_token": SEED_TOKEN})
    assert got.status_code == 200 and got.json() == listed


def test_unknown_movement_is_404(client: httpx.Client) -> None:
    """An unknown movement id is a 404 missing_resource."""
    r = client.get(f"{URL}/mov_nope", params={"link_token": SEED_TOKEN})
    assert r.status_code == 404 and r.json()["error"]["code"] == "missing_resource"
