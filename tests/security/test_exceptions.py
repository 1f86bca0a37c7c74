"""Exceptions raised by the client never carry a token or the key, even in tracebacks."""

from __future__ import annotations

import json
import socket
import threading
import traceback
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from sync.api.client import FintocClient
from sync.errors import FintocSyncError

KEY = "opaque-KEY-abcdef0123456789"
TOKEN = "0paqueT0kenNoShapeZZ98"


class _Hostile(BaseHTTPRequestHandler):
    """An API that echoes the request (token included) into bodies and Link headers."""

    def do_GET(self) -> None:
        echo = self.path + " " + self.headers.get("Authorization", "")
        headers: dict[str, str] = {}
        body: object
        if self.path.startswith("/v1/links/"):
            status, body = 400, {"error": {"type": "invalid_request_error", "message": echo}}
        elif self.path.startswith("/v1/accounts?"):
            status, body = 200, [{"id": "acc_1"}]
            headers["Link"] = f'<http://evil.test{self.path}&page=2>; rel="next"'
        else:  # movements: the next page is this very page
            status, body = 200, [{"id": "mov_1"}]
            headers["Link"] = f'<http://{self.headers["Host"]}{self.path}>; rel="next"'
        self._send(status, json.dumps(body).encode(), headers)

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture(scope="module")
def hostile_url() -> Iterator[str]:
    """The echoing API on a free loopback port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


CALLS: dict[str, Callable[[FintocClient], Any]] = {
    "error body echoes the token": lambda c: c.get_link(TOKEN),
    "next page on another host": lambda c: list(c.iter_accounts(TOKEN)),
    "next page repeats forever": lambda c: list(c.iter_movements("acc_1", TOKEN)),
}


def _everything_about(exc: BaseException) -> str:
    """str, repr, args and the full traceback with causes and contexts."""
    parts = [str(exc), repr(exc), *map(str, exc.args), "".join(traceback.format_exception(exc))]
    return "\n".join(parts)


@pytest.mark.parametrize("case", list(CALLS))
def test_client_errors_hold_no_token_or_key(hostile_url: str, case: str) -> None:
    """Whatever the API echoes, the raised error's text and traceback hold no secret."""
    client = FintocClient(hostile_url, KEY, sleep=lambda _: None)
    with pytest.raises(FintocSyncError) as caught:
        CALLS[case](client)
    client.close()
    text = _everything_about(caught.value)
    assert TOKEN not in text and KEY not in text


def test_connection_errors_hold_no_token(hostile_url: str) -> None:
    """A refused connection to a token-bearing URL raises an error without the URL."""
    client = FintocClient(_closed_port_url(), KEY, sleep=lambda _: None)
    with pytest.raises(FintocSyncError) as caught:
        client.get_link(TOKEN)
    client.close()
    text = _everything_about(caught.value)
    assert "ConnectError" in text
    assert TOKEN not in text and KEY not in text
