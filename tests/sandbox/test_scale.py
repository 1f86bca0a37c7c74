"""Large generated orgs stay fast and bounded (marked slow: a few seconds)."""

from __future__ import annotations

import time

import httpx
import pytest

from sync.sandbox import Sandbox


@pytest.mark.slow
def test_ten_thousand_links() -> None:
    """10,000 links (~30,000 accounts) build in seconds and page normally."""
    with Sandbox(seed=1, n_links=10_000) as sb:
        assert 27_000 < len(sb.world.accounts) < 33_000
        headers = {"Authorization": sb.secret_key}
        with httpx.Client(base_url=sb.url, headers=headers, timeout=30) as client:
            r = client.get("/v1/links", params={"per_page": 300, "page": 34})
            assert r.headers["x-total-count"] == "10000" and len(r.json()) == 100
            token = sb.link_tokens()[0]  # the newest link: a generated one
            account = client.get("/v1/accounts", params={"link_token": token}).json()[0]
            start = time.monotonic()
            movements = client.get(
                f"/v1/accounts/{account['id']}/movements",
                params={"link_token": token, "per_page": 300},
            )
            assert movements.status_code == 200
            assert time.monotonic() - start < 2
