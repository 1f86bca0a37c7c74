"""A hostile Fintoc-like API on loopback: each test says, per path, what bytes come back.

Real HTTP (a ``ThreadingHTTPServer`` on 127.0.0.1), so the client's whole stack runs:
sockets, chunked bodies, gzip, timeouts. A route answers with a :class:`Reply`; its
``body`` is bytes, or an iterable of chunks written one by one (with ``pause`` seconds
between them, for a server that trickles).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

SECRET = "sk_test_hostile0000000000000000"


@dataclass
class Reply:
    """What one request gets."""

    status: int = 200
    body: bytes | Iterable[bytes] = b"[]"
    headers: dict[str, str] = field(default_factory=dict)
    pause: float = 0.0  # seconds between chunks of an iterable body


def json_reply(doc: Any, status: int = 200) -> Reply:
    """A JSON body (``ensure_ascii`` keeps escapes such as ``\\u0000`` and ``\\udc80``)."""
    return Reply(status, json.dumps(doc).encode(), {"Content-Type": "application/json"})


Route = Callable[[str], Reply]  # called with the query string


class HostileApi:
    """Serve ``routes`` (exact path → route) on an ephemeral loopback port."""

    def __init__(self, routes: dict[str, Route]) -> None:
        self.routes = routes
        self.requests: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The base URL to point a client at."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> HostileApi:
        self._thread.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                api.requests.append(parts.path)
                route = api.routes.get(parts.path)
                reply = route(parts.query) if route else json_reply({"error": {}}, 404)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                try:
                    if isinstance(reply.body, bytes):
                        self.send_header("Content-Length", str(len(reply.body)))
                        self.end_headers()
                        self.wfile.write(reply.body)
                        return
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for chunk in reply.body:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                        time.sleep(reply.pause)
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up, as it should

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


class SlowHead:
    """A raw-socket server on loopback that sends its status line and headers one byte every
    ``pause`` seconds (each read is quick; the whole head takes ``len(head) * pause``)."""

    def __init__(self, head: bytes, body: bytes = b"[]", pause: float = 0.1) -> None:
        self.head, self.body, self.pause = head, body, pause
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        """The base URL to point a client at."""
        host, port = self._listener.getsockname()[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> SlowHead:
        self._thread.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                received = b""
                while b"\r\n\r\n" not in received:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    received += chunk
                for i in range(len(self.head)):
                    if self._stop.is_set():
                        return
                    conn.sendall(self.head[i : i + 1])
                    time.sleep(self.pause)
                conn.sendall(self.body)
            except OSError:
                pass  # the client gave up, as it should
