"""FintocClient against the running sandbox: real HTTP, real httpx, injected faults."""

from __future__ import annotations

import logging
import random
import traceback
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from itertools import islice
from typing import Any

import httpx
import pytest

from sync.api.client import FintocClient, RetryPolicy
from sync.api.schemas import parse_account, parse_link, parse_link_with_accounts, parse_movement
from sync.errors import (
    AuthenticationError,
    LinkError,
    PaginationError,
    PayloadError,
    RetriableError,
    ServerError,
    TransportError,
)
from sync.redact import install_redaction
from sync.sandbox import Sandbox

NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
SINCE = date(2000, 1, 1)
LINKS_PATH = r"^/v1/links$"


class RecordingTransport(httpx.HTTPTransport):
    """The real HTTP transport, remembering every URL it sent."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[httpx.URL] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(request.url)
        return super().handle_request(request)


class Harness:
    """A client wired to the sandbox with a fake sleep and a recording transport."""

    def __init__(self, sb: Sandbox, **kwargs: Any) -> None:
        self.sleeps: list[float] = []
        self.attempts: list[tuple[str, int | None, int]] = []
        self.transport = RecordingTransport()
        secret_key = kwargs.pop("secret_key", sb.secret_key)
        options: dict[str, Any] = {
            "transport": self.transport,
            "sleep": self.sleeps.append,
            "rng": random.Random(0),
            "now": lambda: NOW,
            "on_request": lambda *a: self.attempts.append(a),
        }
        options.update(kwargs)
        self.client = FintocClient(sb.url, secret_key, **options)


@pytest.fixture(scope="module")
def big() -> Iterator[Sandbox]:
    """650 links: more than two pages of 300."""
    with Sandbox(seed=42, n_links=650, port=0) as sb:
        yield sb


def account_with_movements(h: Harness, sb: Sandbox, at_least: int) -> tuple[str, str]:
    """(token, account id) of an account with at least `at_least` movements."""
    for token in sb.link_tokens():
        for acc in h.client.iter_accounts(token):
            found = islice(h.client.iter_movements(acc["id"], token, since=SINCE), at_least)
            if sum(1 for _ in found) == at_least:
                return token, acc["id"]
    raise AssertionError("the seed should give an account with a few movements")


# ---------------------------------------------------------------- happy paths


def test_pages_through_650_links(big: Sandbox) -> None:
    """650 links come back exactly once over three pages of 300."""
    h = Harness(big)
    links = [parse_link(obj) for obj in h.client.iter_links()]
    assert len(links) == 650 and len({link.id for link in links}) == 650
    assert len(h.transport.urls) == 3
    assert [u.params.get("per_page") for u in h.transport.urls] == ["300"] * 3


def test_get_link_accounts_and_movements_parse(sb: Sandbox) -> None:
    """A full walk link → accounts → movements parses with the schema functions."""
    h = Harness(sb)
    token = sb.link_tokens()[0]
    link, embedded = parse_link_with_accounts(h.client.get_link(token))
    accounts = [parse_account(a, link.id) for a in h.client.iter_accounts(token)]
    assert {a.id for a in accounts} == {a.id for a in embedded}
    for acc in accounts:
        for mov in h.client.iter_movements(acc.id, token):
            assert parse_movement(mov, acc.id).account_id == acc.id


def test_movement_next_urls_keep_link_token_and_since(sb: Sandbox) -> None:
    """With per_page=1, pages 2, 3, 4 are requested with link_token and since intact."""
    token, account_id = account_with_movements(Harness(sb), sb, at_least=4)
    h = Harness(sb, per_page=1)
    items = list(islice(h.client.iter_movements(account_id, token, since=SINCE), 4))
    assert len({m["id"] for m in items}) == 4
    assert [u.params.get("page") for u in h.transport.urls] == [None, "2", "3", "4"]
    for url in h.transport.urls:
        assert url.params["link_token"] == token and url.params["since"] == SINCE.isoformat()


# ---------------------------------------------------------------- retries


@pytest.mark.parametrize(
    ("retry_after", "expected_sleeps"),
    [
        (None, None),
        ("0", [0.5, 0.5]),
        ("3", [3.0, 3.0]),
        (format_datetime(NOW + timedelta(seconds=5), usegmt=True), [5.0, 5.0]),
    ],
)
def test_429_then_success(
    sb: Sandbox, retry_after: str | None, expected_sleeps: list[float] | None
) -> None:
    """Two 429s are retried (Retry-After honoured, floored) and the links arrive."""
    sb.faults.add("status_429", path=LINKS_PATH, times=2, retry_after=retry_after)
    h = Harness(sb)
    assert len(list(h.client.iter_links())) == len(sb.link_tokens())
    assert [a[1] for a in h.attempts] == [429, 429, 200]
    if expected_sleeps is None:
        assert len(h.sleeps) == 2 and 0.25 <= h.sleeps[0] <= 0.5 and 0.5 <= h.sleeps[1] <= 1.0
    else:
        assert h.sleeps == expected_sleeps


@pytest.mark.parametrize("kind", ["status_500", "status_502", "status_503"])
def test_server_errors_then_success(sb: Sandbox, kind: str) -> None:
    """5xx (JSON or Cloudflare HTML) are retried until the real answer comes."""
    sb.faults.add(kind, path=LINKS_PATH, times=2)
    h = Harness(sb)
    assert list(h.client.iter_links())
    assert len(h.sleeps) == 2


def test_retries_exhausted_raise_retriable_error(sb: Sandbox) -> None:
    """A 503 that never ends raises a RetriableError after max_attempts requests."""
    sb.faults.add("status_503", path=LINKS_PATH, times=None)
    h = Harness(sb, retry=RetryPolicy(max_attempts=4))
    with pytest.raises(ServerError) as info:
        list(h.client.iter_links())
    assert isinstance(info.value, RetriableError) and info.value.status == 503
    assert len(h.attempts) == 4 and len(h.sleeps) == 3


def test_wrong_secret_key_is_fatal_without_retries(sb: Sandbox) -> None:
    """A wrong key raises AuthenticationError (scope run) after one request."""
    h = Harness(sb, secret_key="sk_test_WRONGwrongWRONG")
    with pytest.raises(AuthenticationError) as info:
        list(h.client.iter_links())
    assert info.value.scope == "run" and len(h.attempts) == 1 and h.sleeps == []


def test_unknown_token_is_a_link_error(sb: Sandbox) -> None:
    """An unknown link token raises LinkError on get_link and on list accounts."""
    h = Harness(sb)
    with pytest.raises(LinkError) as info:
        h.client.get_link("link_doesnotexist_token_nope")
    assert info.value.scope == "link" and not info.value.retriable
    with pytest.raises(LinkError):
        list(h.client.iter_accounts("link_doesnotexist_token_nope"))
    assert h.sleeps == []


def test_malformed_json_becomes_payload_error_after_retries(sb: Sandbox) -> None:
    """A body that is always cut in half raises PayloadError after a few attempts."""
    sb.faults.add("malformed_json", path=LINKS_PATH, times=None)
    h = Harness(sb)
    with pytest.raises(PayloadError):
        list(h.client.iter_links())
    assert len(h.attempts) == RetryPolicy().malformed_body_attempts


def test_one_malformed_body_is_retried(sb: Sandbox) -> None:
    """A single truncated body is retried and the sync goes on."""
    sb.faults.add("malformed_json", path=LINKS_PATH, times=1)
    h = Harness(sb)
    assert len(list(h.client.iter_links())) == len(sb.link_tokens())


def test_connection_reset_is_retried(sb: Sandbox) -> None:
    """A connection reset mid-body is retried transparently."""
    sb.faults.add("reset", path=LINKS_PATH, times=1)
    h = Harness(sb)
    assert len(list(h.client.iter_links())) == len(sb.link_tokens())
    assert h.attempts[0][1] in (None, 200) and len(h.attempts) >= 2


def test_timeout_is_a_transport_error(sb: Sandbox) -> None:
    """A server slower than the read timeout raises TransportError once retries run out."""
    sb.faults.add("timeout", path=LINKS_PATH, times=2, seconds=1.0)
    h = Harness(sb, timeout=httpx.Timeout(0.2), retry=RetryPolicy(max_attempts=2))
    with pytest.raises(TransportError) as info:
        list(h.client.iter_links())
    assert [a[1] for a in h.attempts] == [None, None]
    assert info.value.__cause__ is None


# ---------------------------------------------------------------- pagination faults


def test_repeat_page_is_a_pagination_error(big: Sandbox) -> None:
    """A next link pointing at the same page raises PaginationError, not a loop."""
    big.faults.add("repeat_page", path=LINKS_PATH, times=None)
    try:
        h = Harness(big)
        with pytest.raises(PaginationError):
            list(h.client.iter_links())
        assert len(h.transport.urls) <= 2
    finally:
        big.faults.clear()


def test_empty_page_with_next_is_a_pagination_error(big: Sandbox) -> None:
    """An empty page that still links a next page is an error, not the end of the list."""
    big.faults.add("empty_next", path=LINKS_PATH, times=1)
    try:
        h = Harness(big)
        with pytest.raises(PaginationError):
            list(h.client.iter_links())
        assert len(h.transport.urls) == 1
    finally:
        big.faults.clear()


def test_bad_payload_is_caught_by_the_schema(sb: Sandbox) -> None:
    """An account without balance is a PayloadError naming the field."""
    sb.faults.add("bad_payload", path=r"^/v1/accounts$", times=1, mutate="drop_key:balance")
    h = Harness(sb)
    token = sb.link_tokens()[0]
    with pytest.raises(PayloadError) as info:
        [parse_account(a, "link") for a in h.client.iter_accounts(token)]
    assert info.value.field == "balance"


# ---------------------------------------------------------------- secrets never leak


def test_secrets_absent_from_errors_and_logs(sb: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    """Neither the secret key nor any link token appears in errors, tracebacks or logs
    (logs through the redacting filter the composition root puts on the handlers)."""
    caplog.set_level(logging.DEBUG)
    root = logging.getLogger()
    flt = install_redaction(root)
    tokens = sb.link_tokens()
    h = Harness(sb, retry=RetryPolicy(max_attempts=2), timeout=httpx.Timeout(0.2))
    texts: list[str] = []
    sb.faults.add("status_503", path=r"/v1/accounts", times=None)
    sb.faults.add("timeout", path=r"/movements", times=None, seconds=0.6)
    scenarios = [
        lambda: list(h.client.iter_accounts(tokens[0])),
        lambda: list(h.client.iter_movements("acc_x", tokens[1])),
        lambda: h.client.get_link(tokens[2] + "x"),
        lambda: list(Harness(sb, secret_key=sb.secret_key + "x").client.iter_links()),
    ]
    for run in scenarios:
        with pytest.raises(Exception) as info:
            run()
        texts.append("".join(traceback.format_exception(info.value)))
    texts.append(caplog.text)
    texts.extend(r.getMessage() for r in caplog.records)
    blob = "\n".join(texts)
    root.removeFilter(flt)
    for handler in root.handlers:
        handler.removeFilter(flt)
    # the logs did capture URLs and retries, scrubbed
    assert "link_token=***" in caplog.text and "retrying" in caplog.text
    assert sb.secret_key not in blob
    for token in tokens:
        assert token not in blob
