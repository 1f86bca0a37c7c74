"""Links and accounts: the documented seed payload, legacy shape, updates, deletion."""

from __future__ import annotations

import httpx
import pytest

from sync.sandbox import Sandbox
from tests.sandbox.helpers import DOCUMENTED_LINK, SEED_TOKEN, documented_link, seed_file_link

LEGACY_ID = "6n12zLmai3lLE9Dq"
MISSING_IN_LEGACY = {"object", "status", "active", "refresh_status", "last_time_refreshed"}


def test_seed_link_matches_the_documentation(client: httpx.Client) -> None:
    """GET /v1/links/{token} of the seed link equals the doc example, link_token aside."""
    expected = documented_link()
    expected["link_token"] = None  # only returned at creation time
    served = client.get(f"/v1/links/{SEED_TOKEN}").json()
    assert list(served) == list(expected)
    for key, value in expected.items():
        assert served[key] == value, key


def test_inline_copy_matches_the_seed_file() -> None:
    """The inline copy of the example equals shared/seeds/link-object.txt when present."""
    from_file = seed_file_link()
    if from_file is None:
        pytest.skip("shared/seeds/link-object.txt is not beside this checkout")
    assert from_file == DOCUMENTED_LINK


def test_seed_token_is_the_documented_one(sandbox: Sandbox) -> None:
    """The sandbox accepts the exact token of the documentation example."""
    assert documented_link()["link_token"] == SEED_TOKEN
    assert SEED_TOKEN in sandbox.link_tokens()


def test_list_links_is_shallow(client: httpx.Client) -> None:
    """Listed links carry accounts=null and link_token=null."""
    links = client.get("/v1/links").json()
    assert len(links) >= 8
    assert all(x["accounts"] is None and x["link_token"] is None for x in links)


def test_legacy_link_lacks_modern_keys(client: httpx.Client, sandbox: Sandbox) -> None:
    """The unprefixed 2020 link has no object/status/active/refresh keys, in list and get."""
    listed = next(x for x in client.get("/v1/links").json() if x["id"] == LEGACY_ID)
    assert not MISSING_IN_LEGACY & set(listed)
    token = next(t for t in sandbox.link_tokens() if t.startswith(LEGACY_ID))
    got = client.get(f"/v1/links/{token}").json()
    assert not MISSING_IN_LEGACY & set(got)
    assert got["accounts"] and got["accounts"][0]["id"] == "JjEQx2rPTGGKbrP5"


def test_org_covers_the_awkward_cases(client: httpx.Client, sandbox: Sandbox) -> None:
    """The default org has business/individual, USD, credit, null number and refreshed_at."""
    links = client.get("/v1/links").json()
    assert {x["holder_type"] for x in links} == {"individual", "business"}
    assert {x.get("status") for x in links} >= {"active", "login_required", "inactive"}
    accounts = [
        a
        for t in sandbox.link_tokens()
        for a in client.get("/v1/accounts", params={"link_token": t}).json()
    ]
    assert {"CLP", "USD"} <= {a["currency"] for a in accounts}
    assert {"line_of_credit", "credit_card"} <= {a["type"] for a in accounts}
    assert any(a["number"] is None for a in accounts)
    assert any(a["refreshed_at"] is None for a in accounts)
    assert any("ñ" in a["holder_name"].lower() for a in accounts)


def test_inactive_link_has_active_false(client: httpx.Client) -> None:
    """The inactive link says active=false and status=inactive."""
    inactive = client.get("/v1/links", params={"status": "inactive"}).json()
    assert inactive and all(x["active"] is False and x["status"] == "inactive" for x in inactive)


def test_status_filter(client: httpx.Client) -> None:
    """?status=login_required lists only links needing reconnection."""
    found = client.get("/v1/links", params={"status": "login_required"}).json()
    assert [x["status"] for x in found] == ["login_required"]


def test_account_detail_has_movements_fields(client: httpx.Client) -> None:
    """GET /v1/accounts/{id} carries refresh fields absent from the embedded form."""
    r = client.get("/v1/accounts/acc_Z6AwnGn4idL7DPj4", params={"link_token": SEED_TOKEN})
    account = r.json()
    assert {"next_refresh", "refresh_status", "refreshed_at", "removed_from_link"} <= set(account)
    assert account["balance"] == {"available": 7010510, "current": 7010510, "limit": 7510510}


def test_patch_deactivates_and_reactivates(client: httpx.Client) -> None:
    """PATCH active=false makes the link inactive; true makes it active again."""
    r = client.patch(f"/v1/links/{SEED_TOKEN}", json={"active": False})
    assert r.status_code == 200
    assert (r.json()["active"], r.json()["status"], r.json()["accounts"]) == (
        False,
        "inactive",
        None,
    )
    r = client.patch(f"/v1/links/{SEED_TOKEN}", json={"active": True})
    assert (r.json()["active"], r.json()["status"]) == (True, "active")


def test_patch_rejects_non_boolean(client: httpx.Client) -> None:
    """PATCH with a non-boolean active is a 400 naming the param."""
    r = client.patch(f"/v1/links/{SEED_TOKEN}", json={"active": "no"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "active"


def test_delete_by_id_removes_link_and_token(client: httpx.Client, sandbox: Sandbox) -> None:
    """DELETE /v1/links/{id} is 204; the link leaves the list and its token dies."""
    r = client.delete("/v1/links/link_nMNejK7BT8oGbvO4")
    assert r.status_code == 204 and r.content == b""
    assert "link_nMNejK7BT8oGbvO4" not in [x["id"] for x in client.get("/v1/links").json()]
    assert client.get(f"/v1/links/{SEED_TOKEN}").status_code == 404
    assert SEED_TOKEN not in sandbox.link_tokens()
    truth = next(
        x for x in sandbox.truth(movements=False)["links"] if x["id"] == "link_nMNejK7BT8oGbvO4"
    )
    assert truth["deleted"] is True


def test_delete_by_token_is_404(client: httpx.Client) -> None:
    """DELETE takes the link id, not the token."""
    assert client.delete(f"/v1/links/{SEED_TOKEN}").status_code == 404


def test_institutions_use_object_name(client: httpx.Client) -> None:
    """GET /v1/institutions returns Chilean banks with object_name=institution."""
    institutions = client.get("/v1/institutions").json()
    assert any(i["id"] == "cl_banco_de_chile" for i in institutions)
    assert all(i["object_name"] == "institution" and i["country"] == "cl" for i in institutions)


def test_generated_org_size(sandbox: Sandbox) -> None:
    """n_links=N yields exactly N links with about three accounts each."""
    with Sandbox(seed=3, n_links=300) as sb:
        truth = sb.truth(movements=False)
    assert len(truth["links"]) == 300
    assert 2.3 < len(truth["accounts"]) / 300 < 3.7
