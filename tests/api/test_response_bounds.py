"""A response is bounded in decoded size and in total time, against real loopback servers."""

from __future__ import annotations

import time
import tracemalloc
import zlib
from collections.abc import Iterator

import pytest

from sync.api.client import FintocClient, RetryPolicy
from sync.errors import PayloadError, TransportError
from tests.hostile import SECRET, HostileApi, Reply, SlowHead

MiB = 1024 * 1024


def _gzip_bomb(inflated: int) -> bytes:
    """A gzip body of zeros that inflates to ``inflated`` bytes (about 1/1000 the size)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(MiB)
    out = [packer.compress(zeros) for _ in range(inflated // MiB)]
    return b"".join(out) + packer.flush()


def _client(url: str, **kw: object) -> FintocClient:
    return FintocClient(
        url,
        SECRET,
        retry=RetryPolicy(max_attempts=1),
        sleep=lambda _s: None,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """128 MiB of zeros, gzipped (~130 KB on the wire)."""
    return _gzip_bomb(128 * MiB)


def test_a_gzip_bomb_is_refused_without_being_decoded_whole(bomb: bytes) -> None:
    """A body inflating past max_response_bytes is a PayloadError; memory stays bounded."""
    reply = Reply(200, bomb, {"Content-Type": "application/json", "Content-Encoding": "gzip"})
    with (
        HostileApi({"/v1/links": lambda q: reply}) as api,
        _client(api.url, max_response_bytes=MiB, timeout=10) as client,
    ):
        tracemalloc.start()
        try:
            with pytest.raises(PayloadError, match="larger than 1048576 bytes"):
                list(client.iter_links())
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert peak < 16 * MiB


def _trickle(n: int) -> Iterator[bytes]:
    yield b"["
    for _ in range(n):
        yield b" "
    yield b"]"


def test_a_trickling_server_cannot_hold_a_request_past_the_timeout() -> None:
    """A byte every 0.1 s (each read within the read timeout) still fails after ~timeout."""
    reply = Reply(200, _trickle(200), {"Content-Type": "application/json"}, pause=0.1)
    with HostileApi({"/v1/links": lambda q: reply}) as api, _client(api.url, timeout=1.0) as client:
        started = time.monotonic()
        with pytest.raises(TransportError, match="longer than 1s"):
            list(client.iter_links())
        elapsed = time.monotonic() - started
    assert elapsed < 3.0


HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    + b"X-Padding: "
    + b"a" * 300
    + b"\r\nContent-Length: 2\r\n\r\n"
)  # about 35 s at a byte every 0.1 s


def test_a_server_trickling_its_headers_cannot_hold_a_request_past_the_timeout() -> None:
    """Status line and headers at a byte every 0.1 s (each read within the read timeout)
    still fail the request clearly once the 2 s deadline passed, not after 35 s."""
    with SlowHead(HEAD) as server, _client(server.url, timeout=2.0) as client:
        started = time.monotonic()
        with pytest.raises(TransportError, match=r"longer than 2s \(FINTOC_SYNC_HTTP_TIMEOUT"):
            list(client.iter_links())
        elapsed = time.monotonic() - started
    assert elapsed < 2.0 + 3.0


def test_a_normal_body_within_bounds_is_read() -> None:
    """A body under both bounds decodes as before (chunked transfer included)."""
    reply = Reply(200, [b'[{"id": "li', b'nk_1"}]'], {"Content-Type": "application/json"})
    with HostileApi({"/v1/links": lambda q: reply}) as api, _client(api.url, timeout=5) as client:
        assert [obj["id"] for obj in client.iter_links()] == ["link_1"]
