"""The HTTP transport: stdlib ``ThreadingHTTPServer``, auth, faults, wire format."""

from __future__ import annotations

import json
import socket
import struct
import sys
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

from sync.sandbox import api, control, mutate
from sync.sandbox.faults import FaultRule, Faults
from sync.sandbox.pagination import link_header, page_params, page_url
from sync.sandbox.wire import ApiError, Request, Response, error_body
from sync.sandbox.world import World

# A published test key, not a secret: the sandbox accepts only this one.
SANDBOX_SECRET_KEY = "sk_test_sandbox_4f1c2e9a7b3d5f6e8a0c"  # noqa: S105
_DELAY_KINDS = ("latency", "timeout")


class SandboxHTTPServer(ThreadingHTTPServer):
    """Carries the shared state the handlers read."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the default 5 drops SYNs under parallel clients

    def __init__(
        self,
        address: tuple[str, int],
        world: World,
        faults: Faults,
        key: str,
        latency: float = 0.0,
    ) -> None:
        super().__init__(address, SandboxHandler)
        self.world = world
        self.faults = faults
        self.secret_key = key
        #: Seconds every ``/v1`` request waits before it is answered (a distant API).
        self.latency = latency
        self._stats_lock = threading.Lock()
        self.requests_by_status: Counter[int] = Counter()

    def count(self, status: int) -> None:
        """Count one answered ``/v1`` request (for ``GET /_sandbox/stats``)."""
        with self._stats_lock:
            self.requests_by_status[status] += 1

    def stats(self) -> dict[str, object]:
        """``{"requests": N, "by_status": {"200": n, …}}``: ``/v1`` requests answered so far."""
        with self._stats_lock:
            by_status = {str(k): v for k, v in sorted(self.requests_by_status.items())}
        return {"requests": sum(by_status.values()), "by_status": by_status}

    def handle_error(self, request: object, client_address: object) -> None:
        """Stay quiet about clients that hung up (and about our own reset fault)."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class SandboxHandler(BaseHTTPRequestHandler):
    """One request: parse → authenticate → (fault) → route → write."""

    protocol_version = "HTTP/1.1"  # keep-alive, like the real API
    server: SandboxHTTPServer
    timeout = 60  # idle keep-alive connections do not pin threads forever
    disable_nagle_algorithm = True  # headers and body go in two writes: avoid 40 ms stalls

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: object) -> None:
        """Silent: URLs carry link tokens, and tests want a quiet server."""

    def _serve(self) -> None:
        request = self._parse()
        if self.server.latency > 0 and request.path.startswith("/v1/"):
            time.sleep(self.server.latency)
        try:
            response = self._respond(request)
        except Exception:  # the server must answer even when a handler breaks
            response = Response(500, error_body("api_error", "internal_server_error", "boom"))
        if request.path.startswith("/v1/"):
            self.server.count(response.status)
        self._write(response)

    def _parse(self) -> Request:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
        return Request(
            method=self.command,
            path=unquote(split.path),
            query=parse_qsl(split.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
            base_url=f"http://{host}",
        )

    def _respond(self, request: Request) -> Response:
        if not self._authorized(request):
            message = "Invalid API Key provided"
            return ApiError(401, "authentication_error", "invalid_api_key", message).response()
        if request.method == "GET" and request.path.rstrip("/") == "/_sandbox/stats":
            stats = self.server.stats()
            if request.params.get("movements", "").lower() in ("1", "true"):
                stats["movements"] = self.server.world.movement_count()
            return Response(200, stats)
        if request.path.startswith("/_sandbox/"):
            return control.handle(self.server.world, self.server.faults, request)
        rule = None
        if request.path.startswith("/v1/"):
            rule = self.server.faults.take(request.path, urlsplit(self.path).query)
        if rule is None:
            return api.handle(self.server.world, request)
        return self._faulted(rule, request)

    def _authorized(self, request: Request) -> bool:
        given = request.headers.get("authorization", "")
        key = self.server.secret_key
        return given in (key, f"Bearer {key}")

    def _faulted(self, rule: FaultRule, request: Request) -> Response:
        if rule.kind in _DELAY_KINDS:
            time.sleep(float(rule.params.get("seconds", 1.0 if rule.kind == "latency" else 10.0)))
            return api.handle(self.server.world, request)
        if rule.kind.startswith("status_"):
            return mutate.error_response(rule)
        if rule.kind == "slow_headers":
            response = api.handle(self.server.world, request)
            response.trickle = float(rule.params.get("interval", 0.1))
            return response
        response = api.handle(self.server.world, request)
        if response.status != 200:
            return response
        if response.raw is not None and response.content_type.startswith("application/json"):
            response.body, response.raw = json.loads(response.raw), None  # to rewrite it
        return _rewrite(rule, request, response)

    def _write(self, response: Response) -> None:
        if response.trickle:
            self._write_trickled(response)
            return
        body = response.payload()
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Request-Id", str(uuid.uuid4()))
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.end_headers()
        try:
            if response.reset:
                self._reset(body)
            else:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (timeout fault)

    def _write_trickled(self, response: Response) -> None:
        """The status line and headers a byte at a time (``slow_headers``), then the body."""
        body = response.payload()
        reason = self.responses.get(response.status, ("",))[0]
        lines = [f"{self.protocol_version} {response.status} {reason}"]
        headers = {"Content-Type": response.content_type, "Content-Length": str(len(body))}
        lines += [f"{k}: {v}" for k, v in (headers | response.headers).items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            for i in range(len(head)):
                self.wfile.write(head[i : i + 1])
                self.wfile.flush()
                time.sleep(response.trickle)
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def _reset(self, body: bytes) -> None:
        """Send half the promised body, then abort the TCP connection (RST)."""
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        linger = struct.pack("ii", 1, 0)
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        self.connection.close()
        self.close_connection = True


def _rewrite(rule: FaultRule, request: Request, response: Response) -> Response:
    if rule.kind == "malformed_json":
        return mutate.malformed(response)
    if rule.kind == "bad_payload":
        return mutate.corrupt(response, rule)
    if rule.kind == "reset":
        response.reset = True
        return response
    page, _ = page_params(request)
    if rule.kind == "repeat_page":
        links = [("first", 1), ("next", page)]
        response.headers["Link"] = link_header(request, links)
        return response
    # empty_next: an empty page that still promises a next one.
    next_url = page_url(request, page + 1)
    first = link_header(request, [("first", 1)])
    response.headers["Link"] = f'{first}, <{next_url}>; rel="next"'
    return Response(200, [], response.headers)
