"""The ``/_sandbox/*`` control API, so a test in another process can steer the sandbox."""

from __future__ import annotations

import json
from typing import Any

from sync.sandbox.clock import fmt_ts
from sync.sandbox.faults import Faults
from sync.sandbox.wire import ApiError, Request, Response, bad_request, not_found
from sync.sandbox.world import World


def handle(world: World, faults: Faults, request: Request) -> Response:
    """Answer a control request (already authenticated)."""
    try:
        return _route(world, faults, request)
    except ApiError as exc:
        return exc.response()


def _route(world: World, faults: Faults, request: Request) -> Response:
    action = (request.method, request.path.rstrip("/"))
    if action == ("POST", "/_sandbox/advance"):
        body = _json(request)
        try:
            world.advance(hours=float(body.get("hours", 0)), days=float(body.get("days", 0)))
        except (TypeError, ValueError) as exc:
            raise bad_request("invalid_params", str(exc), None) from exc
        return Response(200, {"clock": fmt_ts(world.now)})
    if action == ("POST", "/_sandbox/faults"):
        try:
            rule = faults.add_json(_json(request))
        except (KeyError, TypeError, ValueError) as exc:
            raise bad_request("invalid_params", f"bad fault rule: {exc}", None) from exc
        return Response(201, rule.to_json())
    if action == ("DELETE", "/_sandbox/faults"):
        faults.clear()
        return Response(204)
    if action == ("GET", "/_sandbox/faults"):
        return Response(200, [r.to_json() for r in faults.rules])
    if action == ("GET", "/_sandbox/truth"):
        flag = request.params.get("movements")
        movements = None if flag is None else flag.lower() in ("1", "true")
        return Response(200, world.truth(movements=movements))
    if action == ("POST", "/_sandbox/links"):
        link, exchange = world.create_link()
        return Response(201, {"id": link.id, "exchange_token": exchange})
    if action == ("POST", "/_sandbox/on_demand"):
        world.realtime.on_demand = bool(_json(request).get("enabled", True))
        return Response(200, {"on_demand": world.realtime.on_demand})
    if action == ("GET", "/_sandbox/tokens"):
        return Response(200, world.link_tokens())
    raise not_found("control route")


def _json(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError as exc:
        raise bad_request("invalid_params", "body is not JSON", None) from exc
    if not isinstance(body, dict):
        raise bad_request("invalid_params", "body must be a JSON object", None)
    return body
