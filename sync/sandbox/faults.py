"""Fault injection for ``/v1`` routes.

A rule matches a request when its ``path`` regex matches the path (``re.search``) and,
if set, ``match_query`` is a substring of the raw query string. Each request consumes
at most one rule: the first matching one still armed, in the order they were added.
``times`` is how many requests the rule applies to (``None`` = forever).

Kinds and their params:

=================  ==========================================================================
``latency``        ``seconds`` (default 1.0): wait, then answer normally
``timeout``        ``seconds`` (default 10.0): wait longer than a client's read timeout
``status_429``     ``retry_after`` (optional: seconds, ``"0"`` or an HTTP-date) → 429 JSON
``status_500``     500 with a Fintoc ``api_error`` JSON body
``status_502``     502 with a Cloudflare-like HTML body
``status_503``     503 with a Cloudflare-like HTML body
``malformed_json`` 200 whose body is the real JSON cut in half
``reset``          send headers and half the body, then reset the connection
``slow_headers``   ``interval`` (default 0.1): the status line and headers one byte at a
                   time, ``interval`` seconds apart (each read is quick; the whole is not)
``repeat_page``    the real page, but ``rel="next"`` points at the same URL
``empty_next``     ``[]`` with a ``rel="next"`` to the following page
``bad_payload``    corrupt one item: ``mutate`` = ``drop_key:K`` | ``wrong_type:K`` |
                   ``unknown_enum:K`` | ``huge_amount`` | ``invalid_date[:K]`` |
                   ``set_id:ID`` (the item's id becomes ID: rules on two accounts'
                   movements make both report one movement id); ``index`` (default 0)
                   picks the list item
=================  ==========================================================================
"""

from __future__ import annotations

import itertools
import re
import threading
from dataclasses import dataclass, field
from typing import Any

KINDS = frozenset(
    {
        "latency",
        "timeout",
        "status_429",
        "status_500",
        "status_502",
        "status_503",
        "malformed_json",
        "reset",
        "slow_headers",
        "repeat_page",
        "empty_next",
        "bad_payload",
    }
)
_MUTATIONS = ("drop_key", "wrong_type", "unknown_enum", "huge_amount", "invalid_date", "set_id")
_ids = itertools.count(1)


@dataclass
class FaultRule:
    """One armed fault. ``remaining`` is None for a rule that never runs out."""

    kind: str
    path: str = ".*"
    times: int | None = 1
    match_query: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    id: int = field(default_factory=lambda: next(_ids))
    hits: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; known: {sorted(KINDS)}")
        if self.kind == "bad_payload":
            mutation = str(self.params.get("mutate", ""))
            if mutation.split(":")[0] not in _MUTATIONS:
                raise ValueError(f"bad_payload needs mutate=one of {_MUTATIONS}[:key]")
        self._pattern = re.compile(self.path)

    @property
    def remaining(self) -> int | None:
        """How many more requests this rule will hit."""
        return None if self.times is None else max(0, self.times - self.hits)

    def matches(self, path: str, query: str) -> bool:
        """Whether the rule is armed and applies to this request."""
        if self.remaining == 0 or not self._pattern.search(path):
            return False
        return self.match_query is None or self.match_query in query

    def to_json(self) -> dict[str, Any]:
        """The rule as the control API reports it."""
        return {
            "id": self.id,
            "kind": self.kind,
            "path": self.path,
            "times": self.times,
            "match_query": self.match_query,
            "params": self.params,
            "hits": self.hits,
        }


class Faults:
    """The set of armed fault rules (thread-safe)."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(
        self,
        kind: str,
        path: str = ".*",
        times: int | None = 1,
        match_query: str | None = None,
        **params: Any,
    ) -> FaultRule:
        """Arm a rule; see the module docstring for kinds and params."""
        rule = FaultRule(kind, path, times, match_query, dict(params))
        with self._lock:
            self._rules.append(rule)
        return rule

    def add_json(self, spec: dict[str, Any]) -> FaultRule:
        """Arm a rule from a control-API body: ``{"kind", "path", "times", ...params}``."""
        spec = dict(spec)
        kind = spec.pop("kind")
        params = spec.pop("params", {}) or {}
        return self.add(str(kind), **spec, **params)

    def clear(self) -> None:
        """Disarm every rule."""
        with self._lock:
            self._rules.clear()

    @property
    def rules(self) -> list[FaultRule]:
        """A copy of the current rules."""
        with self._lock:
            return list(self._rules)

    def take(self, path: str, query: str) -> FaultRule | None:
        """The first matching rule, consuming one of its ``times``."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(path, query):
                    rule.hits += 1
                    return rule
        return None
