"""Fixtures: a freshly started sandbox per test, and an authenticated httpx client."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sync.sandbox import Sandbox


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[httpx.Client]:
    """An httpx client that sends the raw secret key, like the official SDKs."""
    headers = {"Authorization": sandbox.secret_key}
    with httpx.Client(base_url=sandbox.url, headers=headers, timeout=10) as c:
        yield c
