"""Webhook delivery, as Fintoc does it (fintoc-api.md §3.6), with fault injection.

Written from the contract, independently of the receiver: its own HMAC signing code.
Each event is POSTed as JSON with ``Fintoc-Signature: t=<unix>,v1=<hex>`` where
``v1 = HMAC-SHA256(secret, "<t>.<raw body>")``; a non-2xx answer or a failed connection
is retried with exponential backoff starting at ``retry_base`` (3 s at Fintoc), up to
``max_retries`` (17) times, then dropped.

Faults, each for the next ``times`` events: ``duplicate`` (delivered ``copies`` times),
``reorder`` (held back until the next event went first), ``delay`` (``seconds`` before
the first attempt), ``bad_signature`` (a forgery: a copy of the event under a new id,
signed with another secret, sent once before the real event and never retried — a
receiver that stores it shows an id Fintoc never signed).

Every attempt is recorded (``report()``: per event id, its type, whether it was forged
and the HTTP status of each attempt, None for no answer; the wall-clock time of the
first attempt), so an invariant checker can tell which events the receiver acknowledged
and a benchmark when each was delivered.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import hmac
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

FAULT_KINDS = ("duplicate", "reorder", "delay", "bad_signature")


def signature_header(secret: str, body: bytes, timestamp: int) -> str:
    """``t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def make_event(event_type: str, data: dict[str, Any], mode: str = "test") -> dict[str, Any]:
    """An Event object (``evt_…``) around ``data``."""
    now = datetime.now(UTC)
    return {
        "id": "evt_" + uuid.uuid4().hex[:24],
        "object": "event",
        "type": event_type,
        "mode": mode,
        "created_at": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
        "data": data,
    }


@dataclass(order=True)
class _Attempt:
    due: float
    seq: int
    event: dict[str, Any] = field(compare=False)
    tries: int = field(default=0, compare=False)
    bad_signature: bool = field(default=False, compare=False)


def _forgery(event: dict[str, Any]) -> dict[str, Any]:
    """The event's data under a new id: what an attacker without the secret would send."""
    return {**event, "id": "evt_" + uuid.uuid4().hex[:24]}


def _data_id(event: dict[str, Any]) -> str | None:
    data = event.get("data")
    if not isinstance(data, dict):
        return None
    value = data.get("id") or data.get("account_id") or data.get("refreshed_object_id")
    return value if isinstance(value, str) else None


class Deliverer:
    """A background thread that POSTs events to one URL with retries and faults."""

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        retry_base: float = 3.0,
        max_retries: int = 17,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url, self.secret = url, secret
        self.retry_base, self.max_retries, self.timeout = retry_base, max_retries, timeout
        self._clock = clock
        self._queue: list[_Attempt] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._faults: dict[str, dict[str, float]] = {}
        self._held: list[_Attempt] = []
        self._in_flight = 0
        self.sent: list[dict[str, Any]] = []  # every event emitted, in emission order
        self._answers: dict[str, dict[str, Any]] = {}  # event id → what report() returns
        self.stats = {
            "attempts": 0,
            "delivered": 0,
            "retried": 0,
            "dropped": 0,
            "forged_refused": 0,
        }
        self.faults_applied = {kind: 0 for kind in FAULT_KINDS}  # events each fault hit
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- control

    def fault(self, kind: str, times: int = 1, **params: float) -> None:
        """Apply a fault to the next ``times`` events (see the module docstring)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown webhook fault {kind!r}; known: {', '.join(FAULT_KINDS)}")
        with self._cond:
            self._faults[kind] = {"times": float(times), **params}

    def emit(self, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
        """Build an event and queue its delivery; returns the event."""
        event = make_event(event_type, data)
        self.deliver(event)
        return event

    def deliver(self, event: dict[str, Any]) -> None:
        """Queue an event as built (faults apply)."""
        with self._cond:
            self.sent.append(event)
            now = self._clock()
            copies = max(1, int(self._take("duplicate", "copies", 2.0)))
            delay = self._take("delay", "seconds", 1.0)
            bad = self._take("bad_signature", "x", 1.0) > 0
            reorder = self._take("reorder", "x", 1.0) > 0
            attempts = [_Attempt(now + delay, next(self._seq), event) for _ in range(copies)]
            self._record(event, forged=False)
            if bad:
                forged = _forgery(event)
                self._record(forged, forged=True)
                attempts.insert(
                    0, _Attempt(now + delay, next(self._seq), forged, bad_signature=True)
                )
            if reorder:
                self._held.extend(attempts)
            else:
                for attempt in attempts:
                    heapq.heappush(self._queue, attempt)
                for held in self._held:  # what was held back now goes after this one
                    held.due, held.seq = now + delay, next(self._seq)
                    heapq.heappush(self._queue, held)
                self._held.clear()
            self._cond.notify()

    def _record(self, event: dict[str, Any], *, forged: bool) -> None:
        self._answers.setdefault(
            event["id"],
            {
                "id": event["id"],
                "type": event.get("type"),
                "data_id": _data_id(event),
                "forged": forged,
                "answers": [],
                "first_attempt_at": None,  # wall clock (unix) of the first POST
            },
        )

    def report(self) -> list[dict[str, Any]]:
        """Per event id (forgeries included): type, data id, forged, each attempt's status."""
        with self._cond:
            return [{**v, "answers": list(v["answers"])} for v in self._answers.values()]

    def _take(self, kind: str, param: str, default: float) -> float:
        rule = self._faults.get(kind)
        if rule is None:
            return 0.0
        rule["times"] -= 1
        self.faults_applied[kind] += 1
        if rule["times"] <= 0:
            del self._faults[kind]
        return float(rule.get(param, default))

    def idle(self) -> bool:
        """Nothing queued, held back or in flight."""
        with self._cond:
            return not self._queue and not self._held and self._in_flight == 0

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until every queued delivery is done (delivered or dropped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.idle():
                return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        """Stop the thread (undelivered events are dropped)."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(5)

    # ---------------------------------------------------------------- the loop

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and (not self._queue or self._queue[0].due > self._clock()):
                    wait = self._queue[0].due - self._clock() if self._queue else None
                    self._cond.wait(wait if wait is None else max(0.0, min(wait, 0.5)))
                if self._stop:
                    return
                attempt = heapq.heappop(self._queue)
                self._in_flight += 1
                record = self._answers[attempt.event["id"]]
                if record["first_attempt_at"] is None:
                    record["first_attempt_at"] = self._clock()
            status = self._post(attempt)
            ok = status is not None and 200 <= status < 300
            with self._cond:
                self._in_flight -= 1
                self.stats["attempts"] += 1
                self._answers[attempt.event["id"]]["answers"].append(status)
                if ok:
                    self.stats["delivered"] += 1
                elif attempt.bad_signature:  # a forgery is not retried
                    self.stats["forged_refused"] += 1
                elif attempt.tries < self.max_retries:
                    attempt.tries += 1
                    attempt.due = self._clock() + self.retry_base * 2 ** (attempt.tries - 1)
                    attempt.seq = next(self._seq)
                    heapq.heappush(self._queue, attempt)
                    self.stats["retried"] += 1
                else:
                    self.stats["dropped"] += 1

    def _post(self, attempt: _Attempt) -> int | None:
        """The HTTP status of one attempt (None: no answer — refused, reset, timed out)."""
        body = json.dumps(attempt.event, separators=(",", ":")).encode()
        secret = "not-the-secret" if attempt.bad_signature else self.secret
        header = signature_header(secret, body, int(self._clock()))
        request = urllib.request.Request(  # noqa: S310 - the URL is the operator's own
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Fintoc-Signature": header},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                status = int(response.status)  # the answer counts once its status line came
                with contextlib.suppress(OSError):
                    response.read()
                return status
        except urllib.error.HTTPError as exc:
            exc.close()
            return int(exc.code)
        except (urllib.error.URLError, OSError, ValueError):
            return None
