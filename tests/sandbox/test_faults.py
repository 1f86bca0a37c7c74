"""Fault injection: every kind is observable over real HTTP."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from sync.sandbox import Sandbox
from tests.sandbox.helpers import SEED_TOKEN, page_of, rels

ACCOUNTS = {"link_token": SEED_TOKEN}
MOVEMENTS = "/v1/accounts/acc_Z6AwnGn4idL7DPj4/movements"


def test_latency_delays_then_answers(sandbox: Sandbox, client: httpx.Client) -> None:
    """latency waits the given seconds, then serves the normal response."""
    sandbox.faults.add("latency", path="^/v1/links$", seconds=0.3)
    start = time.monotonic()
    r = client.get("/v1/links")
    assert r.status_code == 200 and time.monotonic() - start >= 0.3


def test_times_limits_how_often_a_rule_fires(sandbox: Sandbox, client: httpx.Client) -> None:
    """A rule with times=2 hits two matching requests, then the API is healthy."""
    sandbox.faults.add("status_500", path="/v1/links", times=2)
    codes = [client.get("/v1/links").status_code for _ in range(3)]
    assert codes == [500, 500, 200]


def test_path_and_query_matching(sandbox: Sandbox, client: httpx.Client) -> None:
    """Rules only hit requests whose path matches and whose query has match_query."""
    sandbox.faults.add("status_500", path="/movements", match_query="page=2", times=None)
    assert client.get("/v1/links").status_code == 200
    assert client.get(MOVEMENTS, params={**ACCOUNTS, "page": 1}).status_code == 200
    assert client.get(MOVEMENTS, params={**ACCOUNTS, "page": 2}).status_code == 500


@pytest.mark.parametrize("retry_after", ["3", "0", "Wed, 21 Oct 2026 07:28:00 GMT", None])
def test_status_429_retry_after(
    sandbox: Sandbox, client: httpx.Client, retry_after: str | None
) -> None:
    """status_429 answers 429 with the given Retry-After, or none at all."""
    sandbox.faults.add("status_429", retry_after=retry_after)
    r = client.get("/v1/links")
    assert r.status_code == 429
    assert r.headers.get("retry-after") == retry_after
    assert r.json()["error"]["code"] == "rate_limit_exceeded"


def test_status_500_is_fintoc_json(sandbox: Sandbox, client: httpx.Client) -> None:
    """status_500 answers a Fintoc api_error body."""
    sandbox.faults.add("status_500")
    r = client.get("/v1/links")
    assert r.status_code == 500 and r.json()["error"]["type"] == "api_error"


@pytest.mark.parametrize("status", [502, 503])
def test_gateway_errors_are_html(sandbox: Sandbox, client: httpx.Client, status: int) -> None:
    """status_502/503 answer a Cloudflare-like HTML page, not JSON."""
    sandbox.faults.add(f"status_{status}")
    r = client.get("/v1/links")
    assert r.status_code == status
    assert r.headers["content-type"].startswith("text/html")
    assert "cloudflare" in r.text
    with pytest.raises(json.JSONDecodeError):
        r.json()


def test_malformed_json(sandbox: Sandbox, client: httpx.Client) -> None:
    """malformed_json answers 200 with a JSON body cut short."""
    sandbox.faults.add("malformed_json")
    r = client.get("/v1/links")
    assert r.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        r.json()


def test_timeout_outlasts_the_client(sandbox: Sandbox, client: httpx.Client) -> None:
    """timeout sleeps past the client's read timeout."""
    sandbox.faults.add("timeout", seconds=1.0)
    with pytest.raises(httpx.ReadTimeout):
        client.get("/v1/links", timeout=0.3)


def test_reset_breaks_the_body(sandbox: Sandbox, client: httpx.Client) -> None:
    """reset closes the connection in the middle of the body."""
    sandbox.faults.add("reset")
    with pytest.raises(httpx.TransportError):
        client.get("/v1/links")
    assert client.get("/v1/links").status_code == 200


def test_repeat_page_points_next_at_itself(sandbox: Sandbox, client: httpx.Client) -> None:
    """repeat_page makes rel=next the very page that was asked for, forever."""
    sandbox.faults.add("repeat_page", path="/movements", times=None)
    for page in (1, 2):
        r = client.get(MOVEMENTS, params={**ACCOUNTS, "page": page})
        assert page_of(rels(r)["next"]) == page


def test_empty_next(sandbox: Sandbox, client: httpx.Client) -> None:
    """empty_next serves [] with a rel=next to the following page."""
    sandbox.faults.add("empty_next", path="/movements")
    r = client.get(MOVEMENTS, params=ACCOUNTS)
    assert r.json() == [] and page_of(rels(r)["next"]) == 2


@pytest.mark.parametrize(
    ("mutate", "check"),
    [
        ("drop_key:amount", lambda m: "amount" not in m),
        ("wrong_type:amount", lambda m: isinstance(m["amount"], str)),
        ("unknown_enum:status", lambda m: m["status"] == "totally_new_value_from_the_future"),
        ("huge_amount", lambda m: m["amount"] > 2**63),
        ("invalid_date", lambda m: m["post_date"] == "2026-13-45T25:61:00Z"),
        ("set_id:mov_shared", lambda m: m["id"] == "mov_shared"),
    ],
)
def test_bad_payload(sandbox: Sandbox, client: httpx.Client, mutate: str, check: object) -> None:
    """bad_payload corrupts the first item as asked and leaves the others intact."""
    clean = client.get(MOVEMENTS, params=ACCOUNTS).json()
    sandbox.faults.add("bad_payload", path="/movements", mutate=mutate)
    served = client.get(MOVEMENTS, params=ACCOUNTS).json()
    assert callable(check) and check(served[0])
    assert served[1:] == clean[1:]


def test_bad_payload_on_a_single_object(sandbox: Sandbox, client: httpx.Client) -> None:
    """bad_payload also corrupts single objects (drop balance from an account)."""
    sandbox.faults.add("bad_payload", path="/v1/accounts/acc_", mutate="drop_key:balance")
    r = client.get("/v1/accounts/acc_Z6AwnGn4idL7DPj4", params=ACCOUNTS)
    assert "balance" not in r.json()


def test_unknown_kind_is_rejected(sandbox: Sandbox) -> None:
    """Adding an unknown fault kind raises ValueError."""
    with pytest.raises(ValueError, match="unknown fault kind"):
        sandbox.faults.add("gremlins")


def test_faults_never_hit_control_routes(sandbox: Sandbox, client: httpx.Client) -> None:
    """A catch-all rule does not break /_sandbox routes."""
    sandbox.faults.add("status_500", path=".*", times=None)
    assert client.get("/_sandbox/tokens").status_code == 200
    assert client.get("/v1/links").status_code == 500


def test_clear_disarms(sandbox: Sandbox, client: httpx.Client) -> None:
    """faults.clear() removes every rule."""
    sandbox.faults.add("status_500", times=None)
    sandbox.faults.clear()
    assert client.get("/v1/links").status_code == 200


def test_faults_over_the_control_api(client: httpx.Client) -> None:
    """POST /_sandbox/faults arms a rule; DELETE clears them."""
    r = client.post("/_sandbox/faults", json={"kind": "status_503", "path": "/links", "times": 5})
    assert r.status_code == 201 and r.json()["kind"] == "status_503"
    assert client.get("/v1/links").status_code == 503
    assert client.delete("/_sandbox/faults").status_code == 204
    assert client.get("/v1/links").status_code == 200
    bad = client.post("/_sandbox/faults", json={"kind": "nope"})
    assert bad.status_code == 400
