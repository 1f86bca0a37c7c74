"""Authentication and Fintoc-shaped error bodies."""

from __future__ import annotations

import httpx
import pytest

from sync.sandbox import SANDBOX_SECRET_KEY, Sandbox
from tests.sandbox.helpers import SEED_TOKEN


def _assert_error(
    response: httpx.Response, status: int, type_: str, code: str
) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    error = response.json()["error"]
    assert set(error) == {"type", "code", "message", "param", "doc_url"}
    assert (error["type"], error["code"]) == (type_, code)
    assert isinstance(error["message"], str) and error["message"]
    return dict(error)


def test_secret_key_contains_sandbox() -> None:
    """The accepted test key is a sk_test_ key that says it is the sandbox's."""
    assert SANDBOX_SECRET_KEY.startswith("sk_test_")
    assert "sandbox" in SANDBOX_SECRET_KEY


def test_raw_key_is_accepted(sandbox: Sandbox) -> None:
    """The secret key sent verbatim in Authorization authenticates."""
    r = httpx.get(f"{sandbox.url}/v1/links", headers={"Authorization": sandbox.secret_key})
    assert r.status_code == 200


def test_bearer_key_is_accepted(sandbox: Sandbox) -> None:
    """A 'Bearer <key>' Authorization (fintoc-ruby style) authenticates too."""
    headers = {"Authorization": f"Bearer {sandbox.secret_key}"}
    assert httpx.get(f"{sandbox.url}/v1/links", headers=headers).status_code == 200


@pytest.mark.parametrize("headers", [{}, {"Authorization": "sk_test_wrong"}])
def test_missing_or_wrong_key_is_401(sandbox: Sandbox, headers: dict[str, str]) -> None:
    """No key or a wrong key gives 401 authentication_error/invalid_api_key."""
    r = httpx.get(f"{sandbox.url}/v1/links", headers=headers)
    error = _assert_error(r, 401, "authentication_error", "invalid_api_key")
    assert error["param"] is None


def test_control_api_needs_the_key(sandbox: Sandbox) -> None:
    """The /_sandbox control routes are authenticated like the API."""
    assert httpx.get(f"{sandbox.url}/_sandbox/tokens").status_code == 401


def test_unknown_link_token_is_404(client: httpx.Client) -> None:
    """An unknown link token in the path is a 404 invalid_request_error."""
    r = client.get("/v1/links/link_nope_token_nope")
    _assert_error(r, 404, "invalid_request_error", "invalid_link_token")


def test_unknown_token_in_query_is_404(client: httpx.Client) -> None:
    """An unknown link_token on /v1/accounts is a 404 naming the param."""
    r = client.get("/v1/accounts", params={"link_token": "link_x_token_y"})
    error = _assert_error(r, 404, "invalid_request_error", "invalid_link_token")
    assert error["param"] == "link_token"


def test_missing_link_token_is_400(client: httpx.Client) -> None:
    """Listing accounts without link_token is 400 missing_parameter with param."""
    r = client.get("/v1/accounts")
    error = _assert_error(r, 400, "invalid_request_error", "missing_parameter")
    assert error["param"] == "link_token"


def test_account_of_another_link_is_404(client: httpx.Client) -> None:
    """An account id that belongs to a different link is missing_resource."""
    r = client.get("/v1/accounts/acc_Kp3mWx9ZqL2vBn8T", params={"link_token": SEED_TOKEN})
    _assert_error(r, 404, "invalid_request_error", "missing_resource")


def test_invalid_date_is_400(client: httpx.Client) -> None:
    """A since that is not an ISO date is 400 invalid_date with param since."""
    r = client.get(
        "/v1/accounts/acc_Z6AwnGn4idL7DPj4/movements",
        params={"link_token": SEED_TOKEN, "since": "2026-13-40"},
    )
    error = _assert_error(r, 400, "invalid_request_error", "invalid_date")
    assert error["param"] == "since"


def test_unknown_route_is_fintoc_shaped_404(client: httpx.Client) -> None:
    """An unknown route answers a Fintoc error body, not an HTML page."""
    _assert_error(client.get("/v1/nothing/here"), 404, "invalid_request_error", "missing_resource")


def test_every_response_has_a_request_id(client: httpx.Client) -> None:
    """Successful and failed responses both carry X-Request-Id."""
    assert client.get("/v1/links").headers["x-request-id"]
    assert client.get("/v1/nope").headers["x-request-id"]
