"""The official Fintoc Python SDK (fintoc 2.x) works against our sandbox.

Run with ``scripts/sdk_fidelity.sh``, which builds ``.venv-sdk`` with the SDK and
``httpx<0.28``. In the project venv (no ``fintoc`` installed) this module is skipped.
The sandbox runs as a subprocess from the project venv (``SANDBOX_PYTHON``), since the
SDK venv does not have our dependencies.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

fintoc = pytest.importorskip("fintoc")
import httpx  # noqa: E402 - only after the skip: the SDK venv ships its own httpx
from fintoc.errors import AuthenticationError, InvalidRequestError  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
N_LINKS = 70
SEED_TOKEN = "link_nMNejK7BT8oGbvO4_token_GLtktZX5SKphRtJFe_yJTDWT"


@dataclass
class Running:
    """A sandbox subprocess and what it printed."""

    url: str
    key: str
    tokens: list[str]

    def raw(self, path: str, **params: Any) -> httpx.Response:
        """A plain GET against the sandbox, to compare with what the SDK saw."""
        headers = {"Authorization": self.key}
        return httpx.get(f"{self.url}{path}", params=params, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Running]:
    """``python -m sync.sandbox --port 0 --links 70`` in the project venv."""
    python = os.environ.get("SANDBOX_PYTHON", str(ROOT / ".venv" / "bin" / "python"))
    command = [python, "-m", "sync.sandbox", "--port", "0", "--seed", "42"]
    proc = subprocess.Popen(
        [*command, "--links", str(N_LINKS)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        url, key = proc.stdout.readline().strip(), proc.stdout.readline().strip()
        tokens = [proc.stdout.readline().strip() for _ in range(N_LINKS)]
        print(f"sandbox at {url}", file=sys.stderr)
        yield Running(url, key, tokens)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def sdk(sandbox: Running, key: str | None = None) -> Any:
    """A ``Fintoc`` client whose base URL points at the sandbox."""
    client = fintoc.Fintoc(key or sandbox.key)
    client._client.base_url = sandbox.url  # the SDK has no public option for this
    return client


def test_lists_every_link_across_pages(sandbox: Running) -> None:
    """links.list() follows rel=next through three pages of 30 and sees all 70 links."""
    links = list(sdk(sandbox).links.list())
    assert len(links) == N_LINKS
    assert len({x.id for x in links}) == N_LINKS
    served = sandbox.raw("/v1/links", per_page=300).json()
    assert [x.id for x in links] == [x["id"] for x in served]


def test_get_link_with_accounts(sandbox: Running) -> None:
    """links.get(token) returns the documented seed link and lists its accounts."""
    link = sdk(sandbox).links.get(SEED_TOKEN)
    assert link.id == "link_nMNejK7BT8oGbvO4"
    assert link.holder_id == "134910798"
    assert link.institution.id == "cl_banco_de_chile"
    accounts = list(link.accounts.list())
    assert [a.id for a in accounts] == ["acc_Z6AwnGn4idL7DPj4", "acc_BO381oEATXonG6bj"]
    assert accounts[0].balance.available == 7010510
    assert accounts[1].balance.limit == 500000


def test_movements_across_pages(sandbox: Running) -> None:
    """account.movements.list() walks every page (default 30) without repeats."""
    link = sdk(sandbox).links.get(SEED_TOKEN)
    account = link.accounts.get("acc_Z6AwnGn4idL7DPj4")
    movements = list(account.movements.list(since="2026-08-01"))
    total = sandbox.raw(
        "/v1/accounts/acc_Z6AwnGn4idL7DPj4/movements", link_token=SEED_TOKEN, since="2026-08-01"
    ).headers["x-total-count"]
    assert len(movements) == int(total) > 60
    assert len({m.id for m in movements}) == len(movements)
    dates = [m.post_date for m in movements]
    assert dates == sorted(dates, reverse=True)


def test_movement_objects_parse(sandbox: Running) -> None:
    """The SDK turns our movements into objects: transfer accounts, dates, nulls."""
    account = sdk(sandbox).links.get(SEED_TOKEN).accounts.get("acc_Z6AwnGn4idL7DPj4")
    movements = list(account.movements.list(since="2026-06-01", confirmed_only="false"))
    with_sender = [m for m in movements if m.sender_account is not None]
    assert with_sender and with_sender[0].sender_account.holder_name
    assert {m.status for m in movements} >= {"confirmed", "pending"}
    one = account.movements.get(movements[0].id)
    assert one.id == movements[0].id and one.amount == movements[0].amount


def test_generated_link_round_trip(sandbox: Running) -> None:
    """A generated link's token works for link, accounts and movements."""
    token = next(t for t in sandbox.tokens if t != SEED_TOKEN)
    link = sdk(sandbox).links.get(token)
    accounts = list(link.accounts.list())
    assert accounts, "the generated link should have accounts"
    movements = [m for account in accounts for m in account.movements.list()]
    assert movements, "its accounts should have movements"
    assert all(isinstance(m.amount, int) and m.id for m in movements)


def test_wrong_key_raises_authentication_error(sandbox: Running) -> None:
    """A wrong key surfaces as the SDK's AuthenticationError (our body shape maps)."""
    with pytest.raises(AuthenticationError):
        sdk(sandbox, key="sk_test_wrong").links.get(SEED_TOKEN)


def test_unknown_token_raises_invalid_request(sandbox: Running) -> None:
    """An unknown token surfaces as the SDK's InvalidRequestError."""
    with pytest.raises(InvalidRequestError):
        sdk(sandbox).links.get("link_nope_token_nope")
