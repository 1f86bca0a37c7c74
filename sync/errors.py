"""The error tree of fintoc-sync, classified by what the caller should do.

::

    FintocSyncError                     base of everything we raise on purpose
    ├── ConfigError                     bad configuration / usage      (run; CLI exit 2)
    ├── ApiError                        the API answered with an error (status, code, request_id)
    │   ├── RetriableError              worth another attempt          (retriable)
    │   │   ├── RateLimitedError        429
    │   │   ├── ServerError             5xx (incl. Cloudflare HTML pages)
    │   │   └── TransportError          timeout, connection refused/reset, broken body
    │   ├── AuthenticationError         401/403: the key is wrong      (run: stop everything)
    │   ├── LinkError                   404 token, link_error, 406     (link: skip this link)
    │   └── InvalidRequestError         400/422 and other 4xx          (link)
    └── PayloadError                    the API sent data we cannot use (link; has .field)
        ├── MalformedBodyError          a 200 whose body is not JSON (often truncated; retried)
        └── PaginationError             pages repeat forever / page cap exceeded

Every class carries two class attributes so callers decide by behaviour, not by type:

* ``retriable``: the client may try the same request again (it already did, up to its
  policy, before raising).
* ``scope``: ``"run"`` means the whole run cannot go on (bad key, bad config);
  ``"link"`` means only the link being synced failed and the run continues.

Messages never contain a secret key, a link token, or a URL query string: they are built
from a method and a path template (``GET /v1/accounts/{id}/movements``) and scrubbed.
"""

from __future__ import annotations

from typing import ClassVar, Literal

Scope = Literal["run", "link"]


class FintocSyncError(Exception):
    """Base class of every error fintoc-sync raises on purpose."""

    retriable: ClassVar[bool] = False
    scope: ClassVar[Scope] = "run"


class ConfigError(FintocSyncError):
    """Bad configuration or usage; the CLI exits with status 2."""


class ApiError(FintocSyncError):
    """The Fintoc API (or the network in front of it) answered with an error."""

    scope: ClassVar[Scope] = "link"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        error_type: str | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_type = error_type
        self.code = code
        self.request_id = request_id

    def __str__(self) -> str:
        extras = [
            f"{name}={value}"
            for name, value in (
                ("status", self.status),
                ("type", self.error_type),
                ("code", self.code),
                ("request_id", self.request_id),
            )
            if value is not None
        ]
        return f"{self.message} ({', '.join(extras)})" if extras else self.message


class RetriableError(ApiError):
    """A transient failure: the same request may succeed later.

    ``retry_after`` holds the server's ``Retry-After`` in seconds when it sent one.
    """

    retriable: ClassVar[bool] = True
    retry_after: float | None = None


class RateLimitedError(RetriableError):
    """HTTP 429: too many requests."""


class ServerError(RetriableError):
    """HTTP 5xx, including non-JSON pages from a proxy in front of the API."""


class TransportError(RetriableError):
    """No usable HTTP response: timeout, connection refused or reset, truncated body."""


class AuthenticationError(ApiError):
    """HTTP 401/403: the secret key is missing, wrong, expired or of the wrong mode."""

    scope: ClassVar[Scope] = "run"


class LinkError(ApiError):
    """A problem with one link: unknown token, invalid credentials, institution down."""


class InvalidRequestError(ApiError):
    """The API refused the request as malformed (400, 422 and other 4xx)."""


class PayloadError(FintocSyncError):
    """The API sent data we cannot use: malformed JSON, missing keys, wrong types."""

    scope: ClassVar[Scope] = "link"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class MalformedBodyError(PayloadError):
    """A successful response whose body is not valid JSON, usually a truncated read.

    Retriable: the client tries again a couple of times before giving up.
    """

    retriable: ClassVar[bool] = True


class PaginationError(PayloadError):
    """Pagination does not end: a page repeats, or the page cap was exceeded."""


class Interrupted(FintocSyncError):
    """A stop was requested (SIGTERM/SIGINT) while waiting to retry; not the API's fault."""
