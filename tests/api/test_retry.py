"""Retry policy functions and the client's retry/pagination mechanics over httpx.MockTransport."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest

from sync.api.client import (
    FintocClient,
    RetryPolicy,
    _error_for,
    add_jitter,
    backoff_delay,
    retry_after_seconds,
    retry_delay,
    should_retry,
)
from sync.errors import (
    ApiError,
    AuthenticationError,
    InvalidRequestError,
    LinkError,
    MalformedBodyError,
    PaginationError,
    PayloadError,
    RateLimitedError,
    ServerError,
    TransportError,
)

BASE = "https://api.test"
KEY = "sk_test_SECRETKEY123"
TOKEN = "link_abc_token_TOPSECRET"
NOW = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)
Handler = Callable[[httpx.Request], httpx.Response]


def make_client(handler: Handler, **kwargs: Any) -> tuple[FintocClient, list[float]]:
    """A client over MockTransport with a recording fake sleep."""
    sleeps: list[float] = []
    client = FintocClient(
        BASE,
        KEY,
        transport=httpx.MockTransport(handler),
        sleep=sleeps.append,
        rng=random.Random(0),
        now=lambda: NOW,
        **kwargs,
    )
    return client, sleeps


def scripted(*responses: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    """A handler that plays responses in order and records the requests."""
    seen: list[httpx.Request] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        return item

    return handler, seen


def ok(body: Any, **headers: str) -> httpx.Response:
    return httpx.Response(200, json=body, headers=headers)


# ---------------------------------------------------------------- pure policy functions


def test_backoff_is_exponential_and_capped() -> None:
    """Backoff doubles from base and stops at cap."""
    policy = RetryPolicy(base=0.5, cap=4.0)
    assert [backoff_delay(a, policy) for a in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff_delay(10_000, policy) == 4.0


def test_jitter_stays_within_half_and_full_delay() -> None:
    """add_jitter keeps delays in [d/2, d] and is deterministic for a seeded rng."""
    rng = random.Random(1)
    values = [add_jitter(8.0, rng) for _ in range(200)]
    assert all(4.0 <= v <= 8.0 for v in values)
    assert len(set(values)) > 100
    assert add_jitter(8.0, random.Random(7)) == add_jitter(8.0, random.Random(7))


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_should_retry_transient_statuses(status: int) -> None:
    """429 and 5xx gateway statuses are retried while attempts remain."""
    assert should_retry(status, 1, RetryPolicy())
    assert not should_retry(status, 6, RetryPolicy(max_attempts=6))


@pytest.mark.parametrize("status", [400, 401, 403, 404, 406, 422])
def test_should_not_retry_client_errors(status: int) -> None:
    """4xx other than 429 are never retried."""
    assert not should_retry(status, 1, RetryPolicy())


def test_should_retry_by_error_class() -> None:
    """Retriable errors retry; fatal, per-link and payload errors do not."""
    policy = RetryPolicy()
    assert should_retry(TransportError("x"), 1, policy)
    assert should_retry(ServerError("x", status=503), 1, policy)
    assert not should_retry(AuthenticationError("x", status=401), 1, policy)
    assert not should_retry(LinkError("x", status=404), 1, policy)
    assert not should_retry(PayloadError("x"), 1, policy)
    assert not should_retry(ValueError("x"), 1, policy)


def test_malformed_body_has_a_smaller_budget() -> None:
    """A broken 200 body is retried only up to malformed_body_attempts."""
    policy = RetryPolicy(max_attempts=6, malformed_body_attempts=3)
    err = MalformedBodyError("x")
    assert [should_retry(err, a, policy) for a in (1, 2, 3)] == [True, True, False]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        ("0", 0.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("Mon, 01 Jan 2024 12:00:30 GMT", 30.0),
        ("Mon, 01 Jan 2024 11:00:00 GMT", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
    ],
)
def test_retry_after_parsing(value: str | None, expected: float | None) -> None:
    """Retry-After in delta-seconds and HTTP-date forms; junk is ignored."""
    assert retry_after_seconds(value, NOW) == expected


def test_retry_after_is_clamped_to_floor_and_cap() -> None:
    """Retry-After 0 waits the floor; a huge one waits the cap."""
    policy = RetryPolicy(retry_after_floor=0.5, retry_after_cap=120.0)
    rng = random.Random(0)
    for given, expected in ((0.0, 0.5), (3.0, 3.0), (10_000.0, 120.0)):
        err = RateLimitedError("x", status=429)
        err.retry_after = given
        assert retry_delay(err, 1, policy, rng) == expected


# ---------------------------------------------------------------- status → error


def error_for(status: int, body: Any = None, text: str = "", **headers: str) -> ApiError:
    if body is not None:
        response = httpx.Response(status, json=body, headers=headers)
    else:
        response = httpx.Response(status, text=text, headers=headers)
    return _error_for(response, "GET /v1/links/{link_token}", (TOKEN,), NOW)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, InvalidRequestError),
        (401, AuthenticationError),
        (403, AuthenticationError),
        (404, LinkError),
        (406, LinkError),
        (422, InvalidRequestError),
        (429, RateLimitedError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (301, ApiError),
    ],
)
def test_status_maps_to_error_class(status: int, cls: type[ApiError]) -> None:
    """Each HTTP status maps to the documented class."""
    err = error_for(status, text="<html>nope</html>")
    assert type(err) is cls and err.status == status


def test_fintoc_error_body_is_read() -> None:
    """type, code, message and X-Request-Id come from Fintoc's error object."""
    body = {"error": {"type": "link_error", "code": "rejected_refresh_intent", "message": "m"}}
    err = error_for(422, body, **{"X-Request-Id": "req-1"})
    assert isinstance(err, LinkError)
    assert (err.error_type, err.code, err.request_id) == (
        "link_error",
        "rejected_refresh_intent",
        "req-1",
    )


def test_html_error_body_is_tolerated() -> None:
    """A Cloudflare HTML 503 becomes a ServerError without parsing errors."""
    err = error_for(503, text="<html><body>503 Service Unavailable</body></html>")
    assert isinstance(err, ServerError) and err.error_type is None
    assert "non-JSON" in str(err) and "<html>" not in str(err)


def test_error_message_scrubs_tokens_echoed_by_server() -> None:
    """A token echoed in the server's message is masked in ours."""
    body = {"error": {"type": "invalid_request_error", "message": f"bad link_token {TOKEN}"}}
    err = error_for(404, body)
    assert TOKEN not in str(err) and "TOPSECRET" not in str(err)


# ---------------------------------------------------------------- the retry loop


def test_429_then_success_honours_retry_after_floor() -> None:
    """Two 429s with Retry-After: 0 are retried after the floor, then items arrive."""
    r429 = httpx.Response(429, headers={"Retry-After": "0"})
    handler, seen = scripted(r429, r429, ok([{"id": "link_1"}]))
    client, sleeps = make_client(handler)
    assert [link["id"] for link in client.iter_links()] == ["link_1"]
    assert len(seen) == 3 and sleeps == [0.5, 0.5]


def test_429_with_http_date_waits_until_then() -> None:
    """Retry-After as an HTTP-date waits the remaining time."""
    r429 = httpx.Response(429, headers={"Retry-After": "Mon, 01 Jan 2024 12:00:07 GMT"})
    client, sleeps = make_client(scripted(r429, ok([]))[0])
    assert list(client.iter_links()) == []
    assert sleeps == [7.0]


def test_5xx_without_retry_after_uses_jittered_backoff() -> None:
    """Without Retry-After the waits grow exponentially with jitter."""
    r500 = httpx.Response(500, text="oops")
    client, sleeps = make_client(scripted(r500, r500, r500, ok([]))[0])
    list(client.iter_links())
    assert len(sleeps) == 3
    for attempt, delay in enumerate(sleeps, start=1):
        full = backoff_delay(attempt, RetryPolicy())
        assert full / 2 <= delay <= full


def test_retries_exhausted_raise_the_last_retriable_error() -> None:
    """After max_attempts 503s the ServerError surfaces, having slept max_attempts-1 times."""
    handler, seen = scripted(httpx.Response(503, text="<html>down</html>"))
    client, sleeps = make_client(handler, retry=RetryPolicy(max_attempts=4))
    with pytest.raises(ServerError) as info:
        client.get_link(TOKEN)
    assert len(seen) == 4 and len(sleeps) == 3
    assert info.value.retriable and info.value.status == 503


@pytest.mark.parametrize(
    ("status", "cls"), [(401, AuthenticationError), (404, LinkError), (400, InvalidRequestError)]
)
def test_client_errors_are_not_retried(status: int, cls: type[ApiError]) -> None:
    """401/404/400 fail on the first attempt without sleeping."""
    handler, seen = scripted(httpx.Response(status, json={"error": {"type": "x"}}))
    client, sleeps = make_client(handler)
    with pytest.raises(cls):
        client.get_link(TOKEN)
    assert len(seen) == 1 and sleeps == []


def test_timeout_becomes_transport_error_without_leaking_the_url() -> None:
    """An httpx timeout is retried, then raised as TransportError with no chained cause."""
    exc = httpx.ReadTimeout(f"timed out reading {BASE}/v1/accounts?link_token={TOKEN}")
    client, sleeps = make_client(scripted(exc)[0], retry=RetryPolicy(max_attempts=2))
    with pytest.raises(TransportError) as info:
        list(client.iter_accounts(TOKEN))
    assert len(sleeps) == 1
    assert TOKEN not in str(info.value) and "TOPSECRET" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__context__ is None
    assert "ReadTimeout" in str(info.value)


def test_connection_reset_then_success() -> None:
    """A reset connection is retried transparently."""
    client, _ = make_client(scripted(httpx.ConnectError("reset"), ok({"id": "link_1"}))[0])
    assert client.get_link(TOKEN)["id"] == "link_1"


def test_malformed_json_is_retried_then_payload_error() -> None:
    """A truncated 200 body is retried twice, then raised as a PayloadError."""
    handler, seen = scripted(httpx.Response(200, content=b'[{"id": "li'))
    client, _ = make_client(handler)
    with pytest.raises(PayloadError):
        list(client.iter_links())
    assert len(seen) == RetryPolicy().malformed_body_attempts


def test_truncated_body_then_good_body_succeeds() -> None:
    """One truncated body followed by a good one yields the items."""
    handler, _ = scripted(httpx.Response(200, content=b'[{"id"'), ok([{"id": "l1"}]))
    client, _ = make_client(handler)
    assert [x["id"] for x in client.iter_links()] == ["l1"]


def test_on_request_reports_every_attempt() -> None:
    """The metrics hook sees each attempt's status, None for transport errors."""
    calls: list[tuple[str, int | None, int]] = []
    handler, _ = scripted(httpx.ConnectError("x"), httpx.Response(502), ok([]))
    client, _ = make_client(handler, on_request=lambda *a: calls.append(a))
    list(client.iter_links())
    assert calls == [("GET", None, 1), ("GET", 502, 2), ("GET", 200, 3)]


def test_rate_limiter_is_acquired_before_every_attempt() -> None:
    """The shared limiter is asked once per HTTP attempt, retries included."""

    class CountingLimiter:
        count = 0

        def acquire(self) -> None:
            self.count += 1

        def throttled(self) -> None:
            pass

        def succeeded(self) -> None:
            pass

    limiter = CountingLimiter()
    client, _ = make_client(scripted(httpx.Response(500), ok([]))[0], rate_limiter=limiter)
    list(client.iter_links())
    assert limiter.count == 2


# ---------------------------------------------------------------- headers and pagination


def test_request_headers() -> None:
    """Raw secret key (no Bearer), Fintoc-Version, Accept JSON, per_page=300."""
    handler, seen = scripted(ok([]))
    client, _ = make_client(handler)
    list(client.iter_links(status="active"))
    req = seen[0]
    assert req.headers["Authorization"] == KEY
    assert req.headers["Fintoc-Version"] == "2023-11-15"
    assert req.headers["Accept"] == "application/json"
    assert req.url.params["per_page"] == "300" and req.url.params["status"] == "active"


def test_no_version_header_when_api_version_is_none() -> None:
    """api_version=None sends no Fintoc-Version (the org's pinned version applies)."""
    handler, seen = scripted(ok({"id": "l"}))
    client, _ = make_client(handler, api_version=None)
    client.get_link(TOKEN)
    assert "Fintoc-Version" not in seen[0].headers


def paged_handler(pages: int, seen: list[httpx.Request], host: str = BASE) -> Handler:
    """Movements over `pages` pages; the Link header echoes the query like Fintoc does."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        page = int(request.url.params.get("page", "1"))
        if request.url.params.get("link_token") != TOKEN:
            return httpx.Response(400, json={"error": {"type": "invalid_request_error"}})
        headers = {}
        if page < pages:
            nxt = request.url.copy_set_param("page", str(page + 1))
            headers["Link"] = f'<{str(nxt).replace(BASE, host)}>; rel="next"'
        return ok([{"id": f"mov_{page}_{i}"} for i in range(2)], **headers)

    return handler


def test_next_urls_keep_their_query() -> None:
    """Pages 2 and 3 are requested with link_token, since and until still in the query."""
    seen: list[httpx.Request] = []
    client, _ = make_client(paged_handler(3, seen))
    items = list(
        client.iter_movements("acc_1", TOKEN, since=date(2024, 1, 1), until=date(2024, 2, 1))
    )
    assert len(items) == 6
    assert [r.url.params.get("page") for r in seen] == [None, "2", "3"]
    for req in seen:
        assert req.url.params["link_token"] == TOKEN
        assert req.url.params["since"] == "2024-01-01" and req.url.params["until"] == "2024-02-01"
        assert req.url.params["confirmed_only"] == "false"


def test_confirmed_only_true_is_sent() -> None:
    """confirmed_only=True is passed explicitly."""
    seen: list[httpx.Request] = []
    client, _ = make_client(paged_handler(1, seen))
    list(client.iter_movements("acc_1", TOKEN, confirmed_only=True))
    assert seen[0].url.params["confirmed_only"] == "true"


def test_next_url_to_another_host_is_refused() -> None:
    """A next link to another host raises PayloadError and is never requested."""
    seen: list[httpx.Request] = []
    client, _ = make_client(paged_handler(3, seen, host="https://evil.test"))
    with pytest.raises(PayloadError, match="another host"):
        list(client.iter_movements("acc_1", TOKEN))
    assert all(r.url.host == "api.test" for r in seen) and len(seen) == 1


@pytest.mark.parametrize(
    "host",
    [
        "https://api.test@evil.test",  # starts like our origin, is another host
        "https://api.test.evil.test",
        "http://api.test",  # same host, another scheme
        "https://api.test:8443",
    ],
)
def test_next_url_that_only_looks_like_ours_is_refused(host: str) -> None:
    seen: list[httpx.Request] = []
    client, _ = make_client(paged_handler(3, seen, host=host))
    with pytest.raises(PayloadError, match="another host"):
        list(client.iter_movements("acc_1", TOKEN))
    assert len(seen) == 1


def test_relative_and_absolute_next_urls_are_followed_alike() -> None:
    """A next link as a path (joined to the request URL) or as an absolute URL on our
    origin: the same pages, the same queries."""
    seen: list[httpx.Request] = []
    client, _ = make_client(paged_handler(3, seen, host=""))  # "/v1/...?page=2"
    relative = list(client.iter_movements("acc_1", TOKEN))
    seen_abs: list[httpx.Request] = []
    client, _ = make_client(paged_handler(3, seen_abs))
    assert list(client.iter_movements("acc_1", TOKEN)) == relative and len(relative) == 6
    assert [str(r.url) for r in seen] == [str(r.url) for r in seen_abs]


def test_cookies_the_server_sets_are_never_sent_back() -> None:
    """The API is authenticated by key: a Set-Cookie (from it or a proxy) is not kept."""
    handler, seen = scripted(
        ok(
            [{"id": "l1"}],
            **{
                "Set-Cookie": "session=abc123; Path=/",
                "Link": f'<{BASE}/v1/links?page=2>; rel="next"',
            },
        ),
        ok([{"id": "l2"}]),
    )
    client, _ = make_client(handler)
    assert [link["id"] for link in client.iter_links()] == ["l1", "l2"]
    assert len(seen) == 2 and "cookie" not in seen[1].headers


def test_empty_page_with_next_is_a_pagination_error() -> None:
    """An empty array that still advertises a next page is an error, never a short list."""
    handler, seen = scripted(ok([], Link=f'<{BASE}/v1/links?page=2>; rel="next"'))
    client, _ = make_client(handler)
    with pytest.raises(PaginationError):
        list(client.iter_links())
    assert len(seen) == 1


def test_empty_last_page_ends_iteration() -> None:
    """An empty array without a next link is the (empty) end of the list."""
    handler, seen = scripted(ok([]))
    client, _ = make_client(handler)
    assert list(client.iter_links()) == [] and len(seen) == 1


def test_next_url_already_visited_is_a_pagination_error() -> None:
    """A next link pointing back to a fetched page is a PaginationError."""
    handler, seen = scripted(
        ok([{"id": "a"}], Link=f'<{BASE}/v1/links?per_page=300&page=2>; rel="next"'),
        ok([{"id": "b"}], Link=f'<{BASE}/v1/links?per_page=300&page=2>; rel="next"'),
    )
    client, _ = make_client(handler)
    with pytest.raises(PaginationError):
        list(client.iter_links())
    assert len(seen) == 2


def test_repeated_page_content_is_a_pagination_error() -> None:
    """A page whose ids equal the previous page's is a PaginationError (the SDK trap)."""
    counter = iter(range(2, 100))

    def handler(request: httpx.Request) -> httpx.Response:
        return ok([{"id": "same"}], Link=f'<{BASE}/v1/links?page={next(counter)}>; rel="next"')

    client, _ = make_client(handler)
    with pytest.raises(PaginationError, match="repeated"):
        list(client.iter_links())


def test_max_pages_cap() -> None:
    """More pages than max_pages is a PaginationError."""
    seen: list[httpx.Request] = []
    client, _ = make_client(paged_handler(10, seen), max_pages=3)
    with pytest.raises(PaginationError, match="more than 3 pages"):
        list(client.iter_movements("acc_1", TOKEN))
    assert len(seen) == 3


@pytest.mark.parametrize("body", [{"id": "x"}, "text", [1, 2], None])
def test_list_body_must_be_array_of_objects(body: Any) -> None:
    """A list endpoint answering anything but an array of objects is a PayloadError."""
    client, _ = make_client(scripted(ok(body))[0])
    with pytest.raises(PayloadError):
        list(client.iter_links())


def test_single_body_must_be_object() -> None:
    """get_link answering an array is a PayloadError."""
    client, _ = make_client(scripted(ok([]))[0])
    with pytest.raises(PayloadError, match="expected a JSON object"):
        client.get_link(TOKEN)


def test_token_is_path_escaped() -> None:
    """An odd token cannot change the path it is placed in."""
    handler, seen = scripted(ok({"id": "l"}))
    client, _ = make_client(handler)
    client.get_link("a/../b?c")
    assert seen[0].url.raw_path == b"/v1/links/a%2F..%2Fb%3Fc"


def test_redirects_are_not_followed() -> None:
    """A 302 is an error, not a hop that would carry the key elsewhere."""
    handler, seen = scripted(httpx.Response(302, headers={"Location": "https://evil.test/"}))
    client, _ = make_client(handler)
    with pytest.raises(ApiError):
        client.get_link(TOKEN)
    assert len(seen) == 1
