"""GET /_sandbox/stats counts the /v1 requests the sandbox answered, by status."""

from __future__ import annotations

import httpx

from sync.sandbox import Sandbox


def test_stats_count_v1_requests_by_status(sandbox: Sandbox, client: httpx.Client) -> None:
    """Answered /v1 requests are counted by status; control requests are not."""
    assert client.get("/_sandbox/stats").json() == {"requests": 0, "by_status": {}}
    client.get("/v1/links")
    client.get("/v1/links/no-such-token")
    sandbox.faults.add("status_429", path="/v1/institutions", times=1)
    client.get("/v1/institutions")
    client.get("/_sandbox/faults")
    stats = client.get("/_sandbox/stats").json()
    assert stats == {"requests": 3, "by_status": {"200": 1, "404": 1, "429": 1}}
