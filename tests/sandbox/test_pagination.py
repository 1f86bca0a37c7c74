"""Link-header page pagination, exactly as fintoc-api.md §4 describes it."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from sync.sandbox import Sandbox
from tests.sandbox.helpers import SEED_TOKEN, page_of, rels

MOVEMENTS = "/v1/accounts/acc_Z6AwnGn4idL7DPj4/movements"


@pytest.fixture(scope="module")
def big() -> Iterator[httpx.Client]:
    """A client on a 70-link org (several pages of links)."""
    with Sandbox(seed=7, n_links=70) as sb:
        headers = {"Authorization": sb.secret_key}
        with httpx.Client(base_url=sb.url, headers=headers) as c:
            yield c


def test_first_page_rels(big: httpx.Client) -> None:
    """Page 1 has first, next and last but no prev; 30 items by default."""
    r = big.get("/v1/links")
    assert r.status_code == 200 and len(r.json()) == 30
    links = rels(r)
    assert set(links) == {"first", "next", "last"}
    assert (page_of(links["first"]), page_of(links["next"]), page_of(links["last"])) == (1, 2, 3)


def test_middle_page_has_prev_and_next(big: httpx.Client) -> None:
    """A middle page links to both neighbours."""
    links = rels(big.get("/v1/links", params={"page": 2}))
    assert (page_of(links["prev"]), page_of(links["next"])) == (1, 3)


def test_last_page_has_no_next(big: httpx.Client) -> None:
    """The last page has no rel=next, which is how clients know to stop."""
    r = big.get("/v1/links", params={"page": 3})
    assert len(r.json()) == 10
    assert "next" not in rels(r)
    assert page_of(rels(r)["last"]) == 3


def test_past_the_end_is_empty_200(big: httpx.Client) -> None:
    """Pages past the end are an empty array with status 200."""
    r = big.get("/v1/links", params={"page": 99})
    assert r.status_code == 200 and r.json() == []
    assert "next" not in rels(r)


def test_total_count_header(big: httpx.Client) -> None:
    """X-Total-Count counts the whole list, not the page."""
    assert big.get("/v1/links", params={"per_page": 5}).headers["x-total-count"] == "70"


def test_following_next_visits_every_item_once(big: httpx.Client) -> None:
    """Following rel=next from page 1 yields every link exactly once."""
    ids: list[str] = []
    url: str | None = "/v1/links?per_page=7"
    while url:
        r = big.get(url)
        ids += [x["id"] for x in r.json()]
        url = rels(r).get("next")
    assert len(ids) == len(set(ids)) == 70


def test_links_are_newest_first(big: httpx.Client) -> None:
    """The link list is ordered by created_at, newest first."""
    created = [x["created_at"][:19] for x in big.get("/v1/links", params={"per_page": 300}).json()]
    assert created == sorted(created, reverse=True)


def test_per_page_is_capped_at_300(client: httpx.Client) -> None:
    """per_page above 300 serves 300."""
    params = {"link_token": SEED_TOKEN, "per_page": 1000, "confirmed_only": "false"}
    r = client.get(MOVEMENTS, params=params)
    assert int(r.headers["x-total-count"]) > 300
    assert len(r.json()) == 300


def test_params_are_echoed_with_page_last(client: httpx.Client, sandbox: Sandbox) -> None:
    """Link URLs are absolute, echo every original param (link_token too), page last."""
    params = {"link_token": SEED_TOKEN, "since": "2026-01-01", "per_page": "10"}
    r = client.get(MOVEMENTS, params=params)
    url = rels(r)["next"]
    assert url.startswith(f"{sandbox.url}{MOVEMENTS}?")
    query = parse_qsl(urlsplit(url).query)
    assert query == [*params.items(), ("page", "2")]


def test_given_page_param_is_replaced_not_duplicated(client: httpx.Client) -> None:
    """A page param in the request is moved to the end, not repeated."""
    r = client.get(MOVEMENTS, params={"page": 2, "link_token": SEED_TOKEN})
    keys = [k for k, _ in parse_qsl(urlsplit(rels(r)["next"]).query)]
    assert keys == ["link_token", "page"]


def test_single_page_list_has_first_and_last_only(client: httpx.Client) -> None:
    """A list that fits one page links first and last to page 1."""
    r = client.get("/v1/accounts", params={"link_token": SEED_TOKEN})
    links = rels(r)
    assert set(links) == {"first", "last"}
    assert page_of(links["last"]) == 1
    assert r.headers["x-total-count"] == "2"


def test_bad_per_page_is_400(client: httpx.Client) -> None:
    """A non-numeric per_page is rejected with invalid_params."""
    r = client.get("/v1/links", params={"per_page": "lots"})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "per_page"
