"""Fintoc v1 page pagination: ``page``/``per_page`` in, RFC 8288 ``Link`` header out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar
from urllib.parse import urlencode

from sync.sandbox.wire import Request, bad_request

T = TypeVar("T")

DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 300


def page_params(request: Request) -> tuple[int, int]:
    """``(page, per_page)``; per_page is capped at 300 like Fintoc."""
    page = _positive_int(request, "page", 1)
    per_page = min(_positive_int(request, "per_page", DEFAULT_PER_PAGE), MAX_PER_PAGE)
    return page, per_page


def _positive_int(request: Request, name: str, default: int) -> int:
    raw = request.params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise bad_request("invalid_params", f"Invalid value for {name}: {raw!r}", name)
    return value


def last_page(total: int, per_page: int) -> int:
    """The last page number; 1 even when the list is empty (as Fintoc does)."""
    return max(1, -(-total // per_page))


def page_url(request: Request, page: int) -> str:
    """The request URL with every original param echoed and ``page`` appended last."""
    query = [(k, v) for k, v in request.query if k != "page"] + [("page", str(page))]
    return f"{request.base_url}{request.path}?{urlencode(query)}"


def link_header(request: Request, rels: list[tuple[str, int]]) -> str:
    """``<url>; rel="first", ...`` for the given (rel, page) pairs."""
    return ", ".join(f'<{page_url(request, page)}>; rel="{rel}"' for rel, page in rels)


def paginate(request: Request, items: Sequence[T]) -> tuple[list[T], dict[str, str]]:
    """Slice one page and build the ``Link`` and ``X-Total-Count`` headers."""
    page, per_page = page_params(request)
    last = last_page(len(items), per_page)
    rels = [("first", 1)]
    if page > 1:
        rels.append(("prev", min(page - 1, last)))
    if page < last:
        rels.append(("next", page + 1))
    rels.append(("last", last))
    headers = {"Link": link_header(request, rels), "X-Total-Count": str(len(items))}
    start = (page - 1) * per_page
    return list(items[start : start + per_page]), headers
