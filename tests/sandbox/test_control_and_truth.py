"""The control API, truth() consistency with what the API serves, and the CLI entry."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from sync.sandbox import Sandbox


def _serve_all(client: httpx.Client, tokens: list[str]) -> dict[str, Any]:
    """Everything the API serves: links by id, accounts by id, movements by account."""
    links = {x["id"]: x for x in client.get("/v1/links", params={"per_page": 300}).json()}
    accounts: dict[str, Any] = {}
    movements: dict[str, set[str]] = {}
    for token in tokens:
        for account in client.get("/v1/accounts", params={"link_token": token}).json():
            accounts[account["id"]] = account
            params = {"link_token": token, "confirmed_only": "false", "per_page": 300}
            ids: set[str] = set()
            page = 1
            while batch := client.get(
                f"/v1/accounts/{account['id']}/movements", params={**params, "page": page}
            ).json():
                ids |= {m["id"] for m in batch}
                page += 1
            movements[account["id"]] = ids
    return {"links": links, "accounts": accounts, "movements": movements}


def test_truth_matches_the_api_after_advancing(sandbox: Sandbox, client: httpx.Client) -> None:
    """After an advance, truth() and the API agree on links, balances and movements."""
    sandbox.advance(days=3)
    served = _serve_all(client, sandbox.link_tokens())
    truth = sandbox.truth()
    live = [x for x in truth["links"] if not x["deleted"]]
    assert set(served["links"]) == {x["id"] for x in live}
    for link in live:
        assert served["links"][link["id"]].get("status", link["status"]) == link["status"]
    for account in truth["accounts"]:
        if account["id"] in served["accounts"]:
            assert served["accounts"][account["id"]]["balance"] == account["balance"]
    for account_id, ids in served["movements"].items():
        expected = {m["id"] for m in truth["movements"][account_id] if not m["removed"]}
        assert ids == expected


def test_control_advance_moves_the_clock(client: httpx.Client, sandbox: Sandbox) -> None:
    """POST /_sandbox/advance moves the clock that truth reports."""
    r = client.post("/_sandbox/advance", json={"hours": 12, "days": 1})
    assert r.status_code == 200 and r.json()["clock"].startswith("2026-11-03T00:00:00")
    assert client.get("/_sandbox/truth").json()["clock"] == r.json()["clock"]


def test_control_tokens_and_truth(client: httpx.Client, sandbox: Sandbox) -> None:
    """GET /_sandbox/tokens and /_sandbox/truth mirror the Python API."""
    assert client.get("/_sandbox/tokens").json() == sandbox.link_tokens()
    truth = client.get("/_sandbox/truth", params={"movements": "false"}).json()
    assert truth == sandbox.truth(movements=False)


def test_concurrent_requests(client: httpx.Client) -> None:
    """Many requests in parallel (16 connections) all get correct answers."""

    def fetch(_: int) -> int:
        return client.get("/v1/links").status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        assert set(pool.map(fetch, range(64))) == {200}


def test_module_entry_point_prints_url_key_and_tokens() -> None:
    """python -m sync.sandbox --port 0 prints URL, key and tokens, then serves."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sync.sandbox", "--port", "0", "--seed", "42"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url, key = proc.stdout.readline().strip(), proc.stdout.readline().strip()
        first_token = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and "sandbox" in key
        r = httpx.get(f"{url}/v1/links/{first_token}", headers={"Authorization": key})
        assert r.status_code == 200
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
