"""Response rewriting for the body-level faults (``bad_payload`` and friends)."""

from __future__ import annotations

import copy
import json
from typing import Any

from sync.sandbox.faults import FaultRule
from sync.sandbox.wire import Response, error_body

CLOUDFLARE_HTML = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    "</body>\r\n</html>\r\n"
)
_REASONS = {502: "Bad Gateway", 503: "Service Temporarily Unavailable"}
_DATE_KEYS = ("post_date", "created_at", "refreshed_at", "last_time_refreshed")


def error_response(rule: FaultRule) -> Response:
    """The replacement response for the ``status_*`` kinds."""
    status = int(rule.kind.removeprefix("status_"))
    if status == 429:
        headers = {}
        if rule.params.get("retry_after") is not None:
            headers["Retry-After"] = str(rule.params["retry_after"])
        body = error_body("api_error", "rate_limit_exceeded", "Too many requests")
        return Response(429, body, headers)
    if status == 500:
        body = error_body("api_error", "internal_server_error", "Internal server error")
        return Response(500, body)
    html = CLOUDFLARE_HTML.format(status=status, reason=_REASONS[status]).encode()
    headers = {"Server": "cloudflare", "CF-RAY": "8d1f2c3b4a5e6f70-SCL"}
    return Response(status, raw=html, headers=headers, content_type="text/html")


def malformed(response: Response) -> Response:
    """The same response with its JSON cut in half (always invalid JSON)."""
    body = response.payload()
    cut = body[: max(1, len(body) // 2)]
    if cut == body:  # too short to cut: make it invalid anyway
        cut = body + b"}"
    return Response(200, raw=cut, headers=response.headers)


def corrupt(response: Response, rule: FaultRule) -> Response:
    """Apply ``bad_payload``'s ``mutate`` to one item (or the single object)."""
    body = copy.deepcopy(response.body)
    target = body
    if isinstance(body, list):
        if not body:
            return response
        target = body[min(int(rule.params.get("index", 0)), len(body) - 1)]
    if isinstance(target, dict):
        _mutate(target, str(rule.params["mutate"]))
    return Response(response.status, body, response.headers)


def _mutate(item: dict[str, Any], spec: str) -> None:
    op, _, key = spec.partition(":")
    if op == "drop_key":
        item.pop(key, None)
    elif op == "wrong_type":
        item[key] = _wrong_type(item.get(key))
    elif op == "unknown_enum":
        item[key] = "totally_new_value_from_the_future"
    elif op == "huge_amount":
        # Beyond a signed 64-bit integer: a bigint column cannot hold it.
        if "amount" in item or "balance" not in item:
            item["amount"] = 10**20
        else:
            item["balance"]["available"] = 10**20
    elif op == "set_id":
        item["id"] = key
    elif op == "invalid_date":
        name = key or next((k for k in _DATE_KEYS if k in item), "created_at")
        item[name] = "2026-13-45T25:61:00Z"


def _wrong_type(value: Any) -> Any:
    if isinstance(value, bool):
        return "yes"
    if isinstance(value, int):
        return f"{value}.5"
    if isinstance(value, str):
        return 12345
    if isinstance(value, dict):
        return [value]
    return {"unexpected": json.dumps(value)}
