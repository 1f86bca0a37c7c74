"""FintocClient: auth, Link-header pagination, retries with backoff, status → error.

Three layers, as in stripe-python: the public methods (what to fetch) → ``_get`` (one
request with retries; the only place that decides to retry) → ``_attempt`` (one HTTP
exchange; httpx exceptions are translated at exactly one seam, ``_send``). HTTP status
is mapped to an error in exactly one function, :func:`_error_for`.

Link tokens travel in URLs (query ``link_token=`` and the ``/v1/links/{token}`` path),
so no message built here contains a URL: messages use a path template such as
``GET /v1/accounts/{id}/movements`` and are scrubbed anyway.
"""

from __future__ import annotations

import http.cookiejar
import json
import logging
import random
import ssl
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from importlib.metadata import PackageNotFoundError, version
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx
import msgspec

from sync.api import schemas
from sync.api.deadline import bound_sockets, request_deadline
from sync.api.ratelimit import RateLimiter
from sync.errors import (
    ApiError,
    AuthenticationError,
    ConfigError,
    FintocSyncError,
    InvalidRequestError,
    LinkError,
    MalformedBodyError,
    PaginationError,
    PayloadError,
    RateLimitedError,
    RetriableError,
    ServerError,
    TransportError,
)
from sync.redact import scrub
from sync.text import safe_text

log = logging.getLogger(__name__)

try:
    __version__ = version("fintoc-sync")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
#: Decoded bytes one response may have: a 1 MB gzip body can inflate to gigabytes.
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
RETRIABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


# --------------------------------------------------------------------------- retry policy


_MOVEMENTS = "GET /v1/accounts/{id}/movements"


def _movements_query(
    account_id: str, link_token: str, since: date | None, until: date | None, confirmed: bool
) -> tuple[str, dict[str, str]]:
    """The path and query of an account's movements in ``[since, until)``."""
    params = {"link_token": link_token, "confirmed_only": str(confirmed).lower()}
    if since is not None:
        params["since"] = since.isoformat()
    if until is not None:
        params["until"] = until.isoformat()
    return f"v1/accounts/{quote(account_id, safe='')}/movements", params


class _NoCookies(http.cookiejar.CookieJar):
    """A cookie jar that keeps nothing: the API authenticates by key, and a cookie it (or
    something in front of it) set would only be state carried between requests. It also
    spares httpx's per-request cookie bookkeeping."""

    def add_cookie_header(self, request: Any) -> None:
        return None

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None


@dataclass(frozen=True)
class _Typed:
    """A page decoded by a typed page decoder (not a JSON value to check)."""

    items: list[Any]


@dataclass(frozen=True)
class RetryPolicy:
    """How many times and how long to wait. ``max_attempts`` counts the first try."""

    max_attempts: int = 6
    base: float = 0.5
    cap: float = 30.0
    retry_after_floor: float = 0.5
    retry_after_cap: float = 120.0
    # a 200 with a broken body is retried only a couple of times: it may be truncated,
    # but if the server really sends garbage, six attempts would just waste time
    malformed_body_attempts: int = 3


DEFAULT_RETRY = RetryPolicy()


def should_retry(exc_or_status: BaseException | int, attempt: int, policy: RetryPolicy) -> bool:
    """Whether to try again after ``attempt`` (1-based) failed with this status or error."""
    if attempt >= policy.max_attempts:
        return False
    if isinstance(exc_or_status, int):
        return exc_or_status in RETRIABLE_STATUSES
    if isinstance(exc_or_status, MalformedBodyError):
        return attempt < policy.malformed_body_attempts
    return isinstance(exc_or_status, FintocSyncError) and exc_or_status.retriable


def backoff_delay(attempt: int, policy: RetryPolicy) -> float:
    """Capped exponential backoff after ``attempt`` (1-based): base, 2·base, 4·base…"""
    exponent = min(max(attempt - 1, 0), 62)  # bounded so huge attempts cannot overflow
    return float(min(policy.cap, policy.base * 2**exponent))


def add_jitter(delay: float, rng: random.Random) -> float:
    """Spread retries of many workers: a delay uniformly in [delay/2, delay]."""
    return delay / 2 + rng.uniform(0, delay / 2)


def retry_after_seconds(header_value: str | None, now: datetime) -> float | None:
    """Parse ``Retry-After`` (delta-seconds or HTTP-date) into seconds; None if unusable."""
    if header_value is None or not header_value.strip():
        return None
    value = header_value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def retry_delay(
    error: BaseException, attempt: int, policy: RetryPolicy, rng: random.Random
) -> float:
    """The wait before the next attempt: Retry-After within [floor, cap], else backoff."""
    if isinstance(error, RetriableError) and error.retry_after is not None:
        return min(policy.retry_after_cap, max(policy.retry_after_floor, error.retry_after))
    return add_jitter(backoff_delay(attempt, policy), rng)


# --------------------------------------------------------------------------- status → error


def _error_body(content: bytes) -> dict[str, Any]:
    """Fintoc's ``{"error": {...}}`` when the body is that; {} for HTML and the like."""
    try:
        body = json.loads(content)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _text(value: object) -> str | None:
    """A string field of an error body or a header, made safe to log and store."""
    return safe_text(value, 200) if isinstance(value, str) else None


def _error_class(status: int, error_type: str | None) -> type[ApiError]:
    if status in (401, 403) or error_type == "authentication_error":
        return AuthenticationError
    if status == 429:
        return RateLimitedError
    if status >= 500:
        return ServerError
    if status in (404, 406, 410) or error_type in ("link_error", "institution_error"):
        return LinkError
    if 400 <= status < 500:
        return InvalidRequestError
    return ApiError  # 1xx/3xx: nothing we asked for (redirects are not followed)


def _error_for(
    response: httpx.Response,
    what: str,
    secrets: Iterable[str] = (),
    now: datetime | None = None,
    content: bytes | None = None,
) -> ApiError:
    """Map a non-2xx response to its error; ``what`` is e.g. ``GET /v1/links/{token}``.

    ``content`` is the body already read (streamed, bounded); else ``response.content``.
    """
    status = response.status_code
    body = _error_body(response.content if content is None else content)
    error_type, code = _text(body.get("type")), _text(body.get("code"))
    detail = _text(body.get("message")) or ("non-JSON error body" if not body else "no message")
    cls = _error_class(status, error_type)
    message = scrub(f"{what} failed with HTTP {status}: {detail}", secrets)
    error = cls(
        message,
        status=status,
        error_type=error_type,
        code=code,
        request_id=_text(response.headers.get("x-request-id")),
    )
    if isinstance(error, RetriableError):
        error.retry_after = retry_after_seconds(
            response.headers.get("retry-after"), now or datetime.now(UTC)
        )
    return error


# --------------------------------------------------------------------------- the client


_INFLATE_STEP = 256 * 1024
_WBITS = {"gzip": 31, "x-gzip": 31, "deflate": 15}


def _inflate(response: httpx.Response, what: str) -> Iterator[bytes]:
    """The decoded body in pieces of at most ``_INFLATE_STEP`` bytes.

    httpx's own decoders inflate each network chunk whole (130 KB of gzip can become
    128 MiB in one call); zlib's ``max_length`` keeps every step small.
    """
    if response.is_stream_consumed:  # an in-memory transport's response, read before
        yield response.content
        return
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        yield from response.iter_raw()
        return
    if encoding not in _WBITS:
        raise PayloadError(f"{what}: unsupported Content-Encoding", field="Content-Encoding")
    inflater = zlib.decompressobj(_WBITS[encoding])
    try:
        for raw in response.iter_raw():
            data = raw
            while data:
                yield inflater.decompress(data, _INFLATE_STEP)
                data = inflater.unconsumed_tail
        yield inflater.flush()
    except zlib.error:
        pass
    else:
        return
    raise MalformedBodyError(f"{what}: response body is not valid {encoding}", field="<body>")


def _total(timeout: httpx.Timeout | float) -> float:
    """The whole-request deadline a timeout implies: its read timeout (30 s if none)."""
    if isinstance(timeout, httpx.Timeout):
        return float(timeout.read) if timeout.read is not None else 30.0
    return float(timeout)


def _default_now() -> datetime:
    return datetime.now(UTC)


class FintocClient:
    """A synchronous, thread-safe client for Fintoc's data-aggregation API (``/v1``).

    List methods are generators: they page through ``rel="next"`` links lazily and
    yield plain JSON objects (parse them with :mod:`sync.api.schemas`).
    """

    def __init__(
        self,
        base_url: str,
        secret_key: str,
        *,
        api_version: str | None = "2023-11-15",
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        rate_limiter: RateLimiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_pages: int = 10_000,
        per_page: int = 300,
        user_agent: str = f"fintoc-sync/{__version__}",
        on_request: Callable[[str, int | None, int], None] | None = None,
        rng: random.Random | None = None,
        now: Callable[[], datetime] = _default_now,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        deadline: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not secret_key:
            raise ConfigError("a Fintoc secret key is required")
        self._base = httpx.URL(base_url.rstrip("/") + "/")
        if self._base.scheme not in ("http", "https") or not self._base.host:
            raise ConfigError("the Fintoc API URL must be an absolute http(s) URL")
        self._origin = str(self._base.join("/"))  # scheme://host[:port]/
        self._secret_key = secret_key
        self.retry, self.max_pages, self.per_page = retry, max_pages, per_page
        self._limiter, self._sleep, self._on_request = rate_limiter, sleep, on_request
        self._rng, self._now = rng or random.Random(), now  # jitter, not crypto
        self.max_response_bytes = max_response_bytes
        # httpx's timeouts bound each socket read, not the request: a server sending a
        # byte just inside the read timeout would hold a request forever. The whole
        # exchange (connect, headers and body) gets this many seconds; by default the
        # read timeout. Sockets honour it (sync/api/deadline.py); the body loop checks
        # it too, for transports without sockets.
        self.deadline = deadline if deadline is not None else _total(timeout)
        self._monotonic = monotonic
        # Certificates are always verified: there is deliberately no setting to turn it off.
        # A plain-http origin (the sandbox, a local proxy) never speaks TLS to us (next
        # links must stay on the origin), so its client skips loading the CA bundle (~50
        # ms of every command) and holds a context that trusts no certificate at all.
        verify: ssl.SSLContext | bool = True
        if self._base.scheme == "http":
            verify = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, no CA
        self._http = httpx.Client(
            headers=self._headers(api_version, user_agent),
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
            verify=verify,
            cookies=_NoCookies(),
        )
        if transport is None and not bound_sockets(self._http):
            log.warning(
                "this httpx version hides its connection pools: the request deadline "
                "bounds response bodies only, not a server trickling its headers"
            )

    def _headers(self, api_version: str | None, user_agent: str) -> dict[str, str]:
        headers = {
            "Authorization": self._secret_key,  # verbatim, no "Bearer" (fintoc-api.md §1.1)
            "Accept": "application/json",
            # the encodings _inflate decodes within bounds (not br/zstd, which httpx would
            # otherwise offer when their packages happen to be installed)
            "Accept-Encoding": "gzip, deflate",
            "User-Agent": user_agent,
        }
        if api_version:
            headers["Fintoc-Version"] = api_version
        return headers

    # ---------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> FintocClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ---------------------------------------------------------------- public API

    def iter_links(self, status: str | None = None) -> Iterator[dict[str, Any]]:
        """Every link of the organization (``GET /v1/links``), optionally by status."""
        params = {"status": status} if status else {}
        return self._paginate("v1/links", params, "GET /v1/links", ())

    def get_link(self, link_token: str) -> dict[str, Any]:
        """One link with its accounts (``GET /v1/links/{link_token}``)."""
        path = "v1/links/" + quote(link_token, safe="")
        what = "GET /v1/links/{link_token}"
        body, _ = self._get(self._base.join(path), None, what, (link_token,))
        return self._expect_object(body, what)

    def iter_accounts(self, link_token: str) -> Iterator[dict[str, Any]]:
        """The accounts of a link (``GET /v1/accounts?link_token=…``)."""
        params = {"link_token": link_token}
        return self._paginate("v1/accounts", params, "GET /v1/accounts", (link_token,))

    def iter_movements(
        self,
        account_id: str,
        link_token: str,
        *,
        since: date | None = None,
        until: date | None = None,
        confirmed_only: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Movements of an account with ``since <= post_date < until``, newest first.

        ``confirmed_only=False`` (our default, unlike Fintoc's) also returns pending,
        reversed and duplicated movements, so their status changes are recorded.
        """
        path, params = _movements_query(account_id, link_token, since, until, confirmed_only)
        return self._paginate(path, params, _MOVEMENTS, (link_token,))

    def iter_movement_rows(
        self,
        account_id: str,
        link_token: str,
        *,
        since: date | None = None,
        until: date | None = None,
        confirmed_only: bool = False,
    ) -> Iterator[schemas.Movement]:
        """:meth:`iter_movement_pages`, one movement at a time."""
        for page in self.iter_movement_pages(
            account_id, link_token, since=since, until=until, confirmed_only=confirmed_only
        ):
            yield from page

    def iter_movement_pages(
        self,
        account_id: str,
        link_token: str,
        *,
        since: date | None = None,
        until: date | None = None,
        confirmed_only: bool = False,
    ) -> Iterator[list[schemas.Movement]]:
        """:meth:`iter_movements`, parsed, a page at a time: each page is decoded straight
        into movements (:func:`schemas.decode_movement_page`); a page that needs a closer
        look is decoded generically and parsed object by object, each yielded as a page
        of one, so a bad one raises the PayloadError that names its field only after the
        movements before it were handed over (as one at a time would)."""
        path, params = _movements_query(account_id, link_token, since, until, confirmed_only)

        def typed(content: bytes) -> list[schemas.Movement] | None:
            return schemas.decode_movement_page(content, account_id)

        pages = self._paginate(path, params, _MOVEMENTS, (link_token,), typed=typed, pages=True)
        for items in pages:
            if isinstance(items[0], schemas.Movement):  # a typed page (never empty)
                yield items
            else:
                for item in items:
                    yield [schemas.parse_movement(item, account_id)]

    def exchange_link(self, exchange_token: str) -> dict[str, Any]:
        """The link an exchange token stands for, with its ``link_token`` (shown only here).

        ``GET /v1/links/exchange?exchange_token=…`` (fintoc-api.md §2, §9.1).
        """
        what = "GET /v1/links/exchange"
        url = self._base.join("v1/links/exchange")
        body, _ = self._get(url, {"exchange_token": exchange_token}, what, (exchange_token,))
        return self._expect_object(body, what)

    def create_refresh_intent(
        self, link_token: str, refresh_type: str | None = None
    ) -> dict[str, Any]:
        """Ask for an on-demand refresh (``POST /v1/refresh_intents?link_token=…``).

        One Idempotency-Key for every attempt of this call, so a retry after a timeout
        cannot create a second intent.
        """
        what = "POST /v1/refresh_intents"
        url = self._base.join("v1/refresh_intents")
        content = json.dumps({"refresh_type": refresh_type}).encode() if refresh_type else b""
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        if content:
            headers["Content-Type"] = "application/json"
        body, _ = self._get(
            url,
            {"link_token": link_token},
            what,
            (link_token,),
            method="POST",
            content=content,
            headers=headers,
        )
        return self._expect_object(body, what)

    # ---------------------------------------------------------------- pagination

    def _paginate(
        self,
        path: str,
        params: dict[str, str],
        what: str,
        secrets: tuple[str, ...],
        typed: Callable[[bytes], list[Any] | None] | None = None,
        pages: bool = False,
    ) -> Iterator[Any]:
        """Yield the items of every page; stop on no ``next`` (or an empty last page).

        With ``typed``, a page it decodes (not None) yields its typed items (which have an
        ``id`` attribute); any other page yields dicts, as without it. With ``pages``, each
        page's items come as one (never empty) list.
        """
        url: httpx.URL | None = self._base.join(path)
        query: dict[str, str] | None = {**params, "per_page": str(self.per_page)}
        visited: set[str] = set()
        previous_ids: list[object] | None = None
        for _page in range(self.max_pages):
            if url is None:
                return
            body, response = self._get(url, query, what, secrets, typed=typed)
            visited.add(str(response.request.url))
            if isinstance(body, _Typed):
                items: list[Any] = body.items
                ids = [item.id for item in items]
            else:
                items = self._expect_items(body, what)
                ids = [item.get("id") for item in items]
            if not items:
                if response.links.get("next"):  # not the end: treating it so would lose rows
                    raise PaginationError(f"{what}: empty page with a next link", field="Link")
                return
            if ids == previous_ids:
                raise PaginationError(f"{what}: a page repeated the previous one", field="page")
            previous_ids = ids
            if pages:
                yield items
            else:
                yield from items
            url, query = self._next_url(response, what, visited), None
        if url is not None:
            raise PaginationError(f"{what}: more than {self.max_pages} pages", field="page")

    def _next_url(self, response: httpx.Response, what: str, visited: set[str]) -> httpx.URL | None:
        """The ``rel="next"`` URL, refused if it leaves our host or was already fetched."""
        raw = response.links.get("next", {}).get("url")
        if not raw:
            return None
        # An absolute URL on our origin needs no join (which costs three parses a page).
        same_origin = raw.startswith(self._origin)
        url = httpx.URL(raw) if same_origin else response.request.url.join(raw)
        if (url.scheme, url.host, url.port) != (
            self._base.scheme,
            self._base.host,
            self._base.port,
        ):
            # following it would send the secret key to someone else
            raise PayloadError(f"{what}: next page URL points to another host", field="Link")
        if str(url) in visited:
            raise PaginationError(f"{what}: next page URL was already fetched", field="Link")
        return url

    @staticmethod
    def _expect_items(body: object, what: str) -> list[dict[str, Any]]:
        if not isinstance(body, list):
            kind = type(body).__name__
            raise PayloadError(f"{what}: expected a JSON array, got {kind}", field="<body>")
        if not all(isinstance(item, dict) for item in body):
            raise PayloadError(f"{what}: expected an array of objects", field="<body>")
        return body

    @staticmethod
    def _expect_object(body: object, what: str) -> dict[str, Any]:
        if not isinstance(body, dict):
            kind = type(body).__name__
            raise PayloadError(f"{what}: expected a JSON object, got {kind}", field="<body>")
        return body

    # ---------------------------------------------------------------- one request, retried

    def _get(
        self,
        url: httpx.URL,
        params: dict[str, str] | None,
        what: str,
        secrets: tuple[str, ...],
        *,
        method: str = "GET",
        content: bytes = b"",
        headers: dict[str, str] | None = None,
        typed: Callable[[bytes], list[Any] | None] | None = None,
    ) -> tuple[Any, httpx.Response]:
        """A request with retries: the only place that decides whether to try again.

        POSTs go through the same policy: they carry an Idempotency-Key (the caller's),
        the same on every attempt.
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._attempt(
                    url,
                    params,
                    what,
                    secrets,
                    attempt,
                    method=method,
                    content=content,
                    headers=headers,
                    typed=typed,
                )
            except FintocSyncError as error:
                if not should_retry(error, attempt, self.retry):
                    raise
                delay = retry_delay(error, attempt, self.retry, self._rng)
                log.warning(
                    "%s: attempt %d failed (%s); retrying in %.2fs",
                    what,
                    attempt,
                    scrub(str(error), (self._secret_key, *secrets)),
                    delay,
                )
            # sleep outside the except block so the next error is not chained to this one
            self._sleep(delay)

    def _attempt(
        self,
        url: httpx.URL,
        params: dict[str, str] | None,
        what: str,
        secrets: tuple[str, ...],
        attempt: int,
        *,
        method: str = "GET",
        content: bytes = b"",
        headers: dict[str, str] | None = None,
        typed: Callable[[bytes], list[Any] | None] | None = None,
    ) -> tuple[Any, httpx.Response]:
        """One HTTP exchange: rate limit, send, map status, decode JSON (``typed`` first:
        its result comes back wrapped in :class:`_Typed`)."""
        if self._limiter is not None:
            self._limiter.acquire()
        # params=None keeps a next-page URL's query intact (params={} would wipe it)
        request = self._http.build_request(
            method, url, params=params, content=content or None, headers=headers
        )
        response, body = self._send(request, what, secrets, attempt)
        if self._limiter is not None:
            if response.status_code == 429:
                self._limiter.throttled()
            elif response.status_code < 400:
                self._limiter.succeeded()
        if not 200 <= response.status_code < 300:
            raise _error_for(response, what, (self._secret_key, *secrets), self._now(), body)
        if typed is not None:
            items = typed(body)
            if items is not None:
                return _Typed(items), response
        return self._decode(body, what), response

    def _send(
        self, request: httpx.Request, what: str, secrets: tuple[str, ...], attempt: int
    ) -> tuple[httpx.Response, bytes]:
        """The one seam where httpx exceptions become ours; the body read within bounds."""
        started = self._monotonic()
        try:
            with request_deadline(self.deadline) as deadline:
                response = self._http.send(request, stream=True)
                try:
                    content = self._read_bounded(response, what, started)
                finally:
                    response.close()
        except httpx.TransportError as exc:  # timeouts, refused, reset, protocol errors
            description = scrub(
                safe_text(f"{type(exc).__name__}: {exc}", 500), (self._secret_key, *secrets)
            )
            if isinstance(exc, httpx.TimeoutException) and deadline.passed():
                description = self._overran
            self._report(attempt, None, request.method)
        except TransportError:  # the deadline passed while the body trickled in
            self._report(attempt, None, request.method)
            raise
        except PayloadError:  # the body was too large
            self._report(attempt, response.status_code, request.method)
            raise
        else:
            self._report(attempt, response.status_code, request.method)
            return response, content
        # raised outside the except block and `from None`: the httpx exception's text
        # may hold the URL with its link_token, and tracebacks print causes and contexts
        raise TransportError(f"{what} failed: {description}") from None

    def _read_bounded(self, response: httpx.Response, what: str, started: float) -> bytes:
        """The decoded body, refused past ``max_response_bytes`` or the request deadline.

        The body is inflated here (:func:`_inflate`) in bounded steps, so a gzip bomb is
        stopped one step beyond the cap, never decoded whole.
        """
        chunks: list[bytes] = []
        size = 0
        for chunk in _inflate(response, what):
            size += len(chunk)
            if size > self.max_response_bytes:
                raise PayloadError(
                    f"{what}: response body is larger than {self.max_response_bytes} bytes "
                    "(FINTOC_SYNC_MAX_RESPONSE_BYTES)",
                    field="<body>",
                )
            if self._monotonic() - started > self.deadline:
                raise TransportError(f"{what} failed: {self._overran}")
            chunks.append(chunk)
        return b"".join(chunks)

    @property
    def _overran(self) -> str:
        return (
            f"the response took longer than {self.deadline:g}s "
            "(FINTOC_SYNC_HTTP_TIMEOUT bounds the whole request)"
        )

    def _report(self, attempt: int, status: int | None, method: str = "GET") -> None:
        if self._on_request is not None:
            self._on_request(method, status, attempt)

    @staticmethod
    def _decode(content: bytes, what: str) -> Any:
        """JSON with msgspec (about twice as fast as ``json`` on movement pages); what it
        refuses but ``json`` reads (a lone surrogate) goes to the schemas, which name the
        field; what neither reads is a malformed body."""
        try:
            return msgspec.json.decode(content)
        except (msgspec.DecodeError, RecursionError):
            pass
        try:
            return json.loads(content)
        except (ValueError, UnicodeDecodeError):
            pass
        except RecursionError:  # not retried: the same body would come back
            raise PayloadError(
                f"{what}: response body is nested too deeply", field="<body>"
            ) from None
        raise MalformedBodyError(f"{what}: response body is not valid JSON", field="<body>")
