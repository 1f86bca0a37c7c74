"""The daemon's HTTP endpoints: one WSGI app on waitress.

``GET /metrics`` (Prometheus text), ``GET /healthz`` (JSON, 200/503) and, when the
receiver is enabled, ``POST /webhooks/fintoc``. waitress gives a bounded thread pool, a
``channel_timeout`` that closes idle connections, a ``connection_limit`` and a
``max_request_body_size``; see docs/decisions/0007-http-server-and-metrics.md.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from waitress.server import create_server

from sync.api.webhooks import WebhookRejected
from sync.app.metrics import CONTENT_TYPE, SyncMetrics
from sync.errors import ConfigError
from sync.run.context import describe

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/fintoc"
MAX_WEBHOOK_BODY = 256 * 1024  # a Link with its accounts is a few KiB

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
Environ = dict[str, Any]


class WebhookSink(Protocol):
    """What the endpoint hands a delivery to (sync.run.webhooks.Receiver)."""

    def receive(self, signature: str | None, body: bytes) -> Any: ...


@dataclass(frozen=True)
class Limits:
    """waitress's knobs: worker threads, idle timeout, open connections, body size."""

    threads: int = 4
    channel_timeout: float = 30.0
    connection_limit: int = 100
    cleanup_interval: float = 5.0
    max_body: int = MAX_WEBHOOK_BODY


_REASONS = {
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Payload Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def _json(status: int, doc: dict[str, Any]) -> tuple[int, str, bytes]:
    return status, "application/json", (json.dumps(doc) + "\n").encode()


class App:
    """The WSGI application (routing and the webhook's rules; no socket code)."""

    def __init__(
        self, metrics: SyncMetrics, webhooks: WebhookSink | None = None, max_body: int = 0
    ) -> None:
        self.metrics, self.webhooks = metrics, webhooks
        self.max_body = max_body or MAX_WEBHOOK_BODY

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        status, content_type, body = self.route(environ)
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        if status == 405:
            headers.append(("Allow", "POST" if environ.get("PATH_INFO") == WEBHOOK_PATH else "GET"))
        start_response(f"{status} {_REASONS.get(status, 'Error')}", headers)
        return [body]

    def route(self, environ: Environ) -> tuple[int, str, bytes]:
        """(status, content type, body) for one request."""
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if path == WEBHOOK_PATH and self.webhooks is not None:
            if method != "POST":
                return _json(405, {"error": "use POST"})
            return self._webhook(environ)
        if path in ("/metrics", "/healthz"):
            if method not in ("GET", "HEAD"):
                return _json(405, {"error": "use GET"})
            if path == "/metrics":
                return 200, CONTENT_TYPE, self.metrics.render().encode()
            health = self.metrics.health()
            return _json(200 if health.ok else 503, {"ok": health.ok, "reason": health.reason})
        return 404, "text/plain; charset=utf-8", b"not found: try /metrics or /healthz\n"

    def _webhook(self, environ: Environ) -> tuple[int, str, bytes]:
        assert self.webhooks is not None
        body = self._read_body(environ)
        if isinstance(body, tuple):
            return body
        try:
            received = self.webhooks.receive(environ.get("HTTP_FINTOC_SIGNATURE"), body)
        except WebhookRejected as exc:
            self.metrics.webhook_event("-", "rejected")
            log.warning("webhook delivery refused (HTTP %d): %s", exc.status, exc)
            return _json(exc.status, {"error": str(exc)})
        except Exception as exc:  # the database is down: Fintoc retries a 5xx
            log.error("webhook delivery not stored: %s", describe(exc)[1][:300])
            return _json(503, {"error": "not stored; retry later"})
        event = received.event
        self.metrics.webhook_event(event.type, "received" if received.new else "duplicate")
        return _json(200, {"id": event.id, "stored": True, "duplicate": not received.new})

    def _read_body(self, environ: Environ) -> bytes | tuple[int, str, bytes]:
        raw = environ.get("CONTENT_LENGTH") or ""
        if not raw.isdigit():
            return _json(411, {"error": "Content-Length is required"})
        length = int(raw)
        if length > self.max_body:
            return _json(413, {"error": f"body larger than {self.max_body} bytes"})
        body: bytes = environ["wsgi.input"].read(length)
        return body


class HttpServer:
    """waitress serving the App in a background thread; ``shutdown()`` stops it."""

    def __init__(self, app: App, host: str, port: int, limits: Limits = Limits()) -> None:
        try:
            # one host:port → a TcpWSGIServer (the declared union also covers multi-socket)
            self._server: Any = create_server(
                app,
                host=host,
                port=port,
                threads=limits.threads,
                channel_timeout=limits.channel_timeout,
                connection_limit=limits.connection_limit,
                cleanup_interval=limits.cleanup_interval,
                max_request_body_size=limits.max_body,
                # no "waitress" banner, and no proxy headers trusted by default
                ident="fintoc-sync",
                clear_untrusted_proxy_headers=True,
                asyncore_loop_timeout=0.2,
            )
        except OSError as exc:
            raise ConfigError(f"cannot serve HTTP on {host}:{port}: {exc.strerror}") from None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fintoc-sync-http", daemon=True)
        self._thread.start()
        log.info("serving http://%s:%s (/metrics, /healthz%s)", *self.address, _hooks(app))

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port)."""
        return str(self._server.effective_host), int(self._server.effective_port)

    def _loop(self) -> None:
        server = self._server
        while not self._stop.is_set():
            server.asyncore.loop(
                timeout=0.2,
                map=server._map,  # waitress's socket map: run() is the same loop, unstoppable
                use_poll=True,
                count=1,
            )

    def shutdown(self) -> None:
        """Stop accepting, close every connection and the worker threads."""
        self._stop.set()
        self._thread.join(5)
        server = self._server
        for channel in list(server._map.values()):
            if channel is not server:
                channel.close()
        server.task_dispatcher.shutdown(timeout=5)
        server.close()


def _hooks(app: App) -> str:
    return ", POST " + WEBHOOK_PATH if app.webhooks is not None else ""


def serve_metrics(
    metrics: SyncMetrics,
    host: str,
    port: int,
    webhooks: WebhookSink | None = None,
    limits: Limits = Limits(),
) -> HttpServer:
    """Serve the endpoints in a background thread; ``server.shutdown()`` stops it."""
    return HttpServer(App(metrics, webhooks, limits.max_body), host, port, limits)
