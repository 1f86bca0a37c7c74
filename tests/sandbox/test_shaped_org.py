"""The benchmark organization: ``--links N --accounts-per-link A --movements-per-account M
--history-days D`` and ``--latency``, served from memory exactly as the lazy path serves."""

from __future__ import annotations

import json
import time
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from sync.sandbox import Sandbox
from sync.sandbox.__main__ import main as sandbox_main
from sync.sandbox.generate import Shape
from sync.sandbox.world import World

SHAPE = Shape(accounts_per_link=3, movements_per_account=120, history_days=60)


def _all_pages(client: httpx.Client, url: str, params: dict[str, object]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    response = client.get(url, params=params)
    while True:
        assert response.status_code == 200, response.text
        items.extend(response.json())
        nxt = response.links.get("next", {}).get("url")
        if nxt is None:
            return items
        response = client.get(nxt)


def test_shape_gives_exactly_that_many_active_links_and_accounts() -> None:
    world = World(seed=3, n_links=4, shape=SHAPE)
    links = world.list_links()
    assert len(links) == 4
    assert {link.status for link in links} == {"active"}
    start = world.now.date() - timedelta(days=SHAPE.history_days - 1)
    for link in links:
        accounts = world.accounts_of(link)
        assert len(accounts) == SHAPE.accounts_per_link
        assert {a.history_start for a in accounts} == {start}
    # about 120 per account over 60 days (the daily count is random, a few are removed)
    total = world.movement_count()
    assert 0.8 * 4 * 3 * 120 < total < 1.2 * 4 * 3 * 120
    first = min(
        m.day for a in world.accounts.values() for m in world.movements(a, confirmed_only=False)
    )
    assert first >= start


def test_shaped_pages_are_the_same_json_as_the_lazy_path() -> None:
    """The cached bytes must not differ from what to_json renders (one wire format)."""
    world = World(seed=3, n_links=2, shape=SHAPE)
    account = next(iter(world.accounts.values()))
    found = world.movements(account, confirmed_only=False)
    assert found, "the account has movements"
    raw = world.movements_json(found)
    assert raw is not None
    assert json.loads(raw) == [m.to_json(world.now) for m in found]
    # the default organization keeps the lazy path
    assert World(seed=3).movements_json(found) is None


def test_stats_count_what_the_api_serves_and_latency_delays_v1() -> None:
    with Sandbox(seed=5, n_links=3, shape=SHAPE, latency=0.2) as sandbox:
        headers = {"Authorization": sandbox.secret_key}
        with httpx.Client(base_url=sandbox.url, headers=headers, timeout=30) as client:
            started = time.monotonic()
            links = _all_pages(client, "/v1/links", {"per_page": 300})
            assert time.monotonic() - started >= 0.2  # every /v1 answer waits the latency
            served = 0
            for token in sandbox.link_tokens():
                for account in _all_pages(client, "/v1/accounts", {"link_token": token}):
                    params = {"link_token": token, "confirmed_only": "false", "per_page": 50}
                    url = f"/v1/accounts/{account['id']}/movements"
                    served += len(_all_pages(client, url, params))
            stats = client.get("/_sandbox/stats", params={"movements": 1}).json()
    assert len(links) == 3
    assert served > 0
    assert stats["movements"] == served


def test_cli_rejects_a_shape_without_links(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        sandbox_main(["--accounts-per-link", "2"])
    assert exit_info.value.code == 2
    assert "need --links" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        sandbox_main(["--links", "2", "--latency", "soon"])
    assert "not a duration" in capsys.readouterr().err


def test_since_filters_a_shaped_account() -> None:
    world = World(seed=3, n_links=1, shape=SHAPE)
    account = next(iter(world.accounts.values()))
    cut = world.now.date() - timedelta(days=10)
    recent = world.movements(account, since=cut, confirmed_only=False)
    assert all(date.fromisoformat(m.to_json(world.now)["post_date"][:10]) >= cut for m in recent)
    assert len(recent) < len(world.movements(account, confirmed_only=False))
