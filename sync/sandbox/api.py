"""The Fintoc-compatible ``/v1`` routes, answered from the World."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date
from typing import Any

from sync.sandbox import render
from sync.sandbox.catalog import INSTITUTIONS
from sync.sandbox.model import Account, Link
from sync.sandbox.pagination import paginate
from sync.sandbox.wire import ApiError, Request, Response, bad_request, not_found
from sync.sandbox.world import World

Handler = Callable[[World, Request, list[str]], Response]


def _list_links(world: World, request: Request, _: list[str]) -> Response:
    links = world.list_links(request.params.get("status") or None)
    page, headers = paginate(request, links)
    return Response(200, [render.link(x, None) for x in page], headers)


def _get_link(world: World, request: Request, args: list[str]) -> Response:
    link = _link_from_path(world, args[0])
    return Response(200, render.link(link, world.accounts_of(link)))


def _patch_link(world: World, request: Request, args: list[str]) -> Response:
    link = _link_from_path(world, args[0])
    try:
        body = json.loads(request.body or b"{}")
    except ValueError as exc:
        raise bad_request("invalid_params", "Request body is not valid JSON", None) from exc
    active = body.get("active") if isinstance(body, dict) else None
    if not isinstance(active, bool):
        raise bad_request("invalid_params", "active must be a boolean", "active")
    world.set_active(link, active)
    return Response(200, render.link(link, None))


def _delete_link(world: World, request: Request, args: list[str]) -> Response:
    link = world.link_by_id(args[0])
    if link is None:
        raise not_found("link")
    world.delete(link)
    return Response(204)


def _list_accounts(world: World, request: Request, _: list[str]) -> Response:
    link = _link_from_query(world, request)
    page, headers = paginate(request, world.accounts_of(link))
    refresh = world.next_refresh(link)
    return Response(
        200,
        [
            render.account(
                a, full=True, next_refresh=refresh, refreshed_at=world.served_refreshed_at(a)
            )
            for a in page
        ],
        headers,
    )


def _get_account(world: World, request: Request, args: list[str]) -> Response:
    link, account = _account(world, request, args[0])
    body = render.account(
        account,
        full=True,
        next_refresh=world.next_refresh(link),
        refreshed_at=world.served_refreshed_at(account),
    )
    return Response(200, body)


def _list_movements(world: World, request: Request, args: list[str]) -> Response:
    _, account = _account(world, request, args[0])
    params = request.params
    found = world.movements(
        account,
        since=_date_param(params, "since"),
        until=_date_param(params, "until"),
        confirmed_only=_bool_param(params, "confirmed_only", default=True),
    )
    page, headers = paginate(request, found)
    raw = world.movements_json(page)
    if raw is not None:
        return Response(200, None, headers, raw=raw)
    now = world.now
    return Response(200, [m.to_json(now) for m in page], headers)


def _get_movement(world: World, request: Request, args: list[str]) -> Response:
    _, account = _account(world, request, args[0])
    movement = world.movement(account, args[1])
    if movement is None:
        raise not_found("movement")
    return Response(200, movement.to_json(world.now))


def _list_institutions(world: World, request: Request, _: list[str]) -> Response:
    page, headers = paginate(request, list(INSTITUTIONS.values()))
    return Response(200, [render.institution_full(i) for i in page], headers)


def _exchange(world: World, request: Request, _: list[str]) -> Response:
    token = request.params.get("exchange_token")
    if not token:
        raise bad_request(
            "missing_parameter", "Missing required param: exchange_token", "exchange_token"
        )
    link = world.exchange(token)
    if link is None:
        raise not_found("exchange token", "invalid_exchange_token", "exchange_token")
    body = render.link(link, world.accounts_of(link))
    body["link_token"] = link.token  # the only response that shows it
    return Response(200, body)


def _create_refresh_intent(world: World, request: Request, _: list[str]) -> Response:
    link = _link_from_query(world, request)
    kind = "only_last"
    if request.body:
        try:
            doc = json.loads(request.body)
        except ValueError as exc:
            raise bad_request("invalid_params", "Request body is not valid JSON", None) from exc
        kind = doc.get("refresh_type", kind) if isinstance(doc, dict) else kind
    if kind not in ("only_last", "historical"):
        raise bad_request("invalid_params", "refresh_type must be only_last or historical", None)
    return Response(201, world.request_refresh(link, kind).to_json())


def _list_refresh_intents(world: World, request: Request, _: list[str]) -> Response:
    link = _link_from_query(world, request)
    with world.lock:
        intents = list(reversed(world.realtime.intents.get(link.id, [])))
    page, headers = paginate(request, intents)
    return Response(200, [i.to_json() for i in page], headers)


def _get_refresh_intent(world: World, request: Request, args: list[str]) -> Response:
    link = _link_from_query(world, request)
    with world.lock:
        found = [i for i in world.realtime.intents.get(link.id, []) if i.id == args[0]]
    if not found:
        raise not_found("refresh intent")
    return Response(200, found[0].to_json())


ROUTES: list[tuple[str, re.Pattern[str], Handler]] = [
    ("GET", re.compile(r"/v1/links/?"), _list_links),
    ("GET", re.compile(r"/v1/links/exchange/?"), _exchange),
    ("POST", re.compile(r"/v1/refresh_intents/?"), _create_refresh_intent),
    ("GET", re.compile(r"/v1/refresh_intents/?"), _list_refresh_intents),
    ("GET", re.compile(r"/v1/refresh_intents/([^/]+)"), _get_refresh_intent),
    ("GET", re.compile(r"/v1/links/([^/]+)"), _get_link),
    ("PATCH", re.compile(r"/v1/links/([^/]+)"), _patch_link),
    ("DELETE", re.compile(r"/v1/links/([^/]+)"), _delete_link),
    ("GET", re.compile(r"/v1/accounts/?"), _list_accounts),
    ("GET", re.compile(r"/v1/accounts/([^/]+)"), _get_account),
    ("GET", re.compile(r"/v1/accounts/([^/]+)/movements/?"), _list_movements),
    ("GET", re.compile(r"/v1/accounts/([^/]+)/movements/([^/]+)"), _get_movement),
    ("GET", re.compile(r"/v1/institutions/?"), _list_institutions),
]


def handle(world: World, request: Request) -> Response:
    """Route a ``/v1`` request; every failure becomes a Fintoc error body."""
    for method, pattern, handler in ROUTES:
        match = pattern.fullmatch(request.path)
        if match and method == request.method:
            try:
                return handler(world, request, list(match.groups()))
            except ApiError as exc:
                return exc.response()
    return not_found("route", "missing_resource").response()


# -- parameter helpers ---------------------------------------------------------------


def _link_from_path(world: World, token: str) -> Link:
    link = world.link_by_token(token)
    if link is None:
        raise not_found("link", "invalid_link_token")
    return link


def _link_from_query(world: World, request: Request) -> Link:
    token = request.params.get("link_token")
    if not token:
        raise bad_request("missing_parameter", "Missing required param: link_token", "link_token")
    link = world.link_by_token(token)
    if link is None:
        raise not_found("link", "invalid_link_token", "link_token")
    return link


def _account(world: World, request: Request, account_id: str) -> tuple[Link, Account]:
    link = _link_from_query(world, request)
    account = world.account_of(link, account_id)
    if account is None:
        raise not_found("account")
    return link, account


def _date_param(params: dict[str, Any], name: str) -> date | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        # ISO dates; a full ISO datetime is accepted and its date part used.
        return date.fromisoformat(str(raw)[:10])
    except ValueError as exc:
        raise bad_request("invalid_date", f"Invalid date for {name}: {raw!r}", name) from exc


def _bool_param(params: dict[str, Any], name: str, *, default: bool) -> bool:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    lowered = str(raw).lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise bad_request("invalid_params", f"Invalid boolean for {name}: {raw!r}", name)
