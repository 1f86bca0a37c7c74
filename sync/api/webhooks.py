"""Fintoc webhook deliveries: the signature, and the event as a typed value.

``Fintoc-Signature: t=<unix>,v1=<hex>`` where ``v1 = HMAC-SHA256(secret, "<t>.<raw body>")``
(fintoc-api.md §3.6). The signature is checked on the raw bytes, before any parsing, in
constant time; a timestamp older than the tolerance (300 s, as the SDK) is refused, and
so is one from further in the future than the tolerance (a clock that far ahead is not
a clock skew we should paper over).

Pure functions: the clock is an argument, nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sync.api.schemas import parse_timestamp
from sync.errors import FintocSyncError

SIGNATURE_HEADER = "Fintoc-Signature"
DEFAULT_TOLERANCE = 300.0
MAX_HEADER = 1024
MAX_ID = 200


class WebhookRejected(FintocSyncError):
    """A delivery we refuse: unsigned, badly signed, stale, or not an event (HTTP 4xx)."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``v1`` value for this timestamp and raw body."""
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def _parse_header(header: str) -> tuple[int, list[str]]:
    if len(header) > MAX_HEADER:
        raise WebhookRejected("Fintoc-Signature header is too long", status=401)
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t" and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value.strip())
    if timestamp is None or not signatures:
        raise WebhookRejected("Fintoc-Signature header lacks t= or v1=", status=401)
    return timestamp, signatures


def verify_signature(
    header: str | None,
    body: bytes,
    secret: str,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> int:
    """Check the header against the raw body; the signed timestamp, or WebhookRejected."""
    if not header:
        raise WebhookRejected("missing Fintoc-Signature header", status=401)
    timestamp, signatures = _parse_header(header)
    expected = sign(secret, timestamp, body)
    if not any(hmac.compare_digest(expected.encode(), s.encode()) for s in signatures):
        raise WebhookRejected("Fintoc-Signature does not match the body", status=401)
    if abs(now - timestamp) > tolerance:
        raise WebhookRejected(
            f"Fintoc-Signature timestamp is {now - timestamp:.0f}s away from now "
            f"(tolerance {tolerance:.0f}s)",
            status=401,
        )
    return timestamp


@dataclass(frozen=True)
class Event:
    """A verified event. ``payload`` has every ``link_token`` removed; ``link_token`` is
    the one a ``link.created`` carried (kept out of every repr)."""

    id: str
    type: str
    mode: str | None
    created_at: datetime | None
    payload: dict[str, Any]
    subject: str | None
    link_token: str | None = None

    def __repr__(self) -> str:
        return f"Event(id={self.id!r}, type={self.type!r}, subject={self.subject!r})"


def strip_link_tokens(value: Any) -> Any:
    """A copy of a JSON value with every ``link_token`` key removed, at any depth."""
    if isinstance(value, dict):
        return {k: strip_link_tokens(v) for k, v in value.items() if k != "link_token"}
    if isinstance(value, list):
        return [strip_link_tokens(v) for v in value]
    return value


def _short_text(value: object, field: str, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_ID or "\x00" in value:
        raise WebhookRejected(f"not an event: {field} must be a non-empty short string")
    return value


def event_subject(event_type: str, data: dict[str, Any]) -> str | None:
    """The link or account id an event is about (None when we do not act on it)."""
    if event_type.startswith("link."):
        value = data.get("id") if data.get("object", "link") == "link" else None
        if event_type.startswith("link.refresh_intent."):
            value = data.get("refreshed_object_id")
    elif event_type.startswith("account."):
        value = data.get("account_id") or data.get("refreshed_object_id")
    else:
        return None
    return value if isinstance(value, str) and 0 < len(value) <= MAX_ID else None


def parse_event(body: bytes) -> Event:
    """The event in a (verified) body, or WebhookRejected when it is not one."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise WebhookRejected("not an event: the body is not JSON") from None
    if not isinstance(doc, dict) or doc.get("object", "event") != "event":
        raise WebhookRejected("not an event: expected a JSON object with object=event")
    event_id = _short_text(doc.get("id"), "id", required=True)
    event_type = _short_text(doc.get("type"), "type", required=True)
    mode = _short_text(doc.get("mode"), "mode", required=False)
    data = doc.get("data")
    if not isinstance(data, dict):
        raise WebhookRejected("not an event: data must be an object")
    try:
        created = parse_timestamp(doc.get("created_at"), "created_at", where="event")
    except FintocSyncError:
        raise WebhookRejected("not an event: created_at is not a timestamp") from None
    token = data.get("link_token") if event_type == "link.created" else None
    assert event_id is not None and event_type is not None
    return Event(
        id=event_id,
        type=event_type,
        mode=mode,
        created_at=created,
        payload=strip_link_tokens(doc),
        subject=event_subject(event_type, data),
        link_token=token if isinstance(token, str) and 0 < len(token) <= 1000 else None,
    )
