"""A deadline for a whole HTTP request: connect, TLS, headers and body.

httpx's timeouts bound each socket operation, not the request: a server that sends its
status line or headers one byte every 0.1 s never trips a 2 s read timeout and holds the
request for as long as it likes (issue 11; encode/httpx#1450, "low-and-slow" servers).
The maintainers' view there is that a total timeout belongs in httpcore, the network
layer; for async code ``anyio.fail_after`` does it, but our client is synchronous.

So the deadline is enforced where httpcore talks to sockets: a wrapping
``httpcore.NetworkBackend`` whose streams give every connect, TLS handshake, read and
write at most the time left before the current request's deadline (and fail once it
passed). The deadline is per thread (:func:`request_deadline`): a sync request runs
wholly on the thread that sends it, and a pooled connection serves one request at a
time, so a stream always reads the deadline of the request it is serving.

httpx's ``HTTPTransport`` takes no network backend, so :func:`bound_sockets` wraps the
backend of the connection pools an ``httpx.Client`` built (its own transport and the
proxy mounts from the environment, which a transport of ours would lose). That reaches
into two private attributes; it returns how many pools it wrapped, so a change in httpx
shows up (a warning, and the header-trickle test fails) instead of passing silently.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

_current = threading.local()


@dataclass(frozen=True)
class Deadline:
    """When the request in flight on this thread must be over (``time.monotonic``)."""

    at: float

    def passed(self) -> bool:
        """Whether the deadline is over."""
        return time.monotonic() >= self.at


@contextmanager
def request_deadline(seconds: float) -> Iterator[Deadline]:
    """Every socket operation of the block on this thread ends within ``seconds``."""
    previous = getattr(_current, "deadline", None)
    deadline = Deadline(time.monotonic() + seconds)
    _current.deadline = deadline
    try:
        yield deadline
    finally:
        _current.deadline = previous


def _bounded(timeout: float | None, expired: type[Exception]) -> float | None:
    """The operation's timeout cut to the time left; ``expired`` once none is left."""
    deadline: Deadline | None = getattr(_current, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline.at - time.monotonic()
    if left <= 0:
        raise expired("the request deadline passed")
    return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every operation honours the current request's deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """Wraps a backend (httpcore's ``SyncBackend``) so its streams are DeadlineStreams."""

    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        stream = self._backend.connect_tcp(host, port, bounded, local_address, socket_options)
        return DeadlineStream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return DeadlineStream(self._backend.connect_unix_socket(path, bounded, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def bound_sockets(client: httpx.Client) -> int:
    """Put a DeadlineBackend under every connection pool of ``client``; how many it did."""
    wrapped = 0
    transports = [getattr(client, "_transport", None), *getattr(client, "_mounts", {}).values()]
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if isinstance(backend, httpcore.NetworkBackend):
            if not isinstance(backend, DeadlineBackend):
                pool._network_backend = DeadlineBackend(backend)  # type: ignore[union-attr]
            wrapped += 1
    return wrapped
