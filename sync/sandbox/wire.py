"""Transport-neutral request/response values and Fintoc-shaped errors."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

JSON_TYPE = "application/json; charset=utf-8"
DOC_URL = "https://docs.fintoc.com/reference/errors"


@dataclass
class Request:
    """A parsed request. ``query`` keeps the original order (echoed in Link URLs)."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes
    base_url: str

    @property
    def params(self) -> dict[str, str]:
        """Query parameters by name (the last value wins)."""
        return dict(self.query)


@dataclass
class Response:
    """What the server will write: a JSON body (or ``raw`` bytes) plus headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    content_type: str = JSON_TYPE
    reset: bool = False  # the ``reset`` fault: abort the connection mid-body
    trickle: float = 0.0  # the ``slow_headers`` fault: seconds between bytes of the head

    def payload(self) -> bytes:
        """The body bytes: ``raw`` if set, nothing for 204, else compact JSON."""
        if self.raw is not None:
            return self.raw
        if self.status == 204:
            return b""
        return json.dumps(self.body, ensure_ascii=False, separators=(",", ":")).encode()


class ApiError(Exception):
    """An error the API answers with Fintoc's ``{"error": {...}}`` body."""

    def __init__(
        self, status: int, type_: str, code: str, message: str, param: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.code = code
        self.message = message
        self.param = param

    def response(self) -> Response:
        """The Fintoc-shaped error response."""
        return Response(self.status, error_body(self.type, self.code, self.message, self.param))


def error_body(type_: str, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    """Fintoc's error object."""
    return {
        "error": {
            "type": type_,
            "code": code,
            "message": message,
            "param": param,
            "doc_url": f"{DOC_URL}#{type_.replace('_', '-')}",
        }
    }


def not_found(what: str, code: str = "missing_resource", param: str | None = None) -> ApiError:
    """404 ``invalid_request_error``."""
    return ApiError(404, "invalid_request_error", code, f"No such {what}", param)


def bad_request(code: str, message: str, param: str | None) -> ApiError:
    """400 ``invalid_request_error``."""
    return ApiError(400, "invalid_request_error", code, message, param)
