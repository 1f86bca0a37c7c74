"""``Sandbox``: the world, the faults and the HTTP server, run in a background thread."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import FrameType, TracebackType
from typing import Any, TextIO

from sync.sandbox.faults import Faults
from sync.sandbox.generate import Shape
from sync.sandbox.server import SANDBOX_SECRET_KEY, SandboxHTTPServer
from sync.sandbox.webhooks import Deliverer
from sync.sandbox.world import World


class Sandbox:
    """A local Fintoc-compatible API. ``port=0`` picks a free port."""

    def __init__(
        self,
        seed: int = 42,
        n_links: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        secret_key: str = SANDBOX_SECRET_KEY,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        webhook_retry_base: float = 3.0,
        shape: Shape | None = None,
        latency: float = 0.0,
    ) -> None:
        self.world = World(seed=seed, n_links=n_links, shape=shape)
        self.latency = latency
        self.webhooks: Deliverer | None = None
        if webhook_url is not None:
            self.deliver_webhooks(webhook_url, webhook_secret, retry_base=webhook_retry_base)
        self.faults = Faults()
        self.secret_key = secret_key
        self._address = (host, port)
        self._server: SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def deliver_webhooks(
        self, url: str, secret: str | None, *, retry_base: float = 3.0
    ) -> Deliverer:
        """From now on, deliver signed events to url (``truth()`` then has ``webhooks``)."""
        if not secret:
            raise ValueError("a webhook URL needs its signing secret")
        if self.webhooks is not None:
            self.webhooks.close()
        self.webhooks = Deliverer(url, secret, retry_base=retry_base)
        self.world.realtime.emit = self.webhooks.emit
        self.world.realtime.report = self.webhooks.report
        return self.webhooks

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the running server."""
        if self._server is None:
            raise RuntimeError("the sandbox is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Sandbox:
        """Bind and serve in a daemon thread; returns self."""
        if self._server is None:
            self._server = SandboxHTTPServer(
                self._address, self.world, self.faults, self.secret_key, self.latency
            )
            # A short poll interval makes stop() fast (tests start many sandboxes).
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="fintoc-sandbox",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (and the webhook delivery thread)."""
        if self.webhooks is not None:
            self.webhooks.close()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def link_tokens(self) -> list[str]:
        """Tokens of every link that currently exists (newest link first)."""
        return self.world.link_tokens()

    def advance(self, hours: float = 0, days: float = 0) -> None:
        """Move the sandbox clock forward; the world evolves deterministically."""
        self.world.advance(hours=hours, days=days)

    def create_link(self) -> tuple[str, str]:
        """Connect a new link: (its id, a one-time exchange token); ``link.created`` is sent."""
        link, exchange = self.world.create_link()
        return link.id, exchange

    def truth(self, movements: bool | None = None) -> dict[str, Any]:
        """JSON-able snapshot of all state (movements included for small orgs)."""
        return self.world.truth(movements=movements)


def follow_real_time(sandbox: Sandbox, stop: threading.Event, every: float = 30.0) -> None:
    """Keep the sandbox clock at the real time (it only moves forward), until stop is set.

    For users who run their own pipelines against the sandbox for days: its data then
    evolves as a bank's would, and date windows computed from today find movements.
    """
    while True:
        _catch_up(sandbox)
        if stop.wait(every):
            return


def _catch_up(sandbox: Sandbox) -> None:
    behind = datetime.now(UTC) - sandbox.world.now
    if behind > timedelta(0):
        sandbox.advance(hours=behind.total_seconds() / 3600)


def open_sandbox(
    seed: int,
    n_links: int | None,
    host: str = "127.0.0.1",
    port: int = 0,
    real_time: bool = False,
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
    *,
    shape: Shape | None = None,
    latency: float = 0.0,
) -> Sandbox:
    """A started sandbox, caught up to now if ``real_time``, then delivering webhooks.

    Deliveries start after the catch-up: the weeks between the sandbox's epoch and now
    are its history, not changes to announce (hundreds of events nobody asked for).
    """
    if webhook_url is not None and not webhook_secret:
        raise ValueError("a webhook URL needs its signing secret")
    sandbox = Sandbox(
        seed=seed, n_links=n_links, host=host, port=port, shape=shape, latency=latency
    )
    if shape is not None:
        sandbox.world.warm()  # before the URL is printed: the first reader is not slowed
    sandbox.start()
    if real_time:
        _catch_up(sandbox)  # before anything is printed: the first request already sees now
    if webhook_url is not None:
        sandbox.deliver_webhooks(webhook_url, webhook_secret)
    return sandbox


def serve_forever(
    port: int,
    seed: int,
    n_links: int | None,
    out: TextIO,
    host: str = "127.0.0.1",
    real_time: bool = False,
    announce: Callable[[Sandbox, TextIO], None] | None = None,
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
    shape: Shape | None = None,
    latency: float = 0.0,
) -> None:
    """Run a sandbox in the foreground until SIGINT/SIGTERM.

    Prints the URL, the accepted secret key, then one link token per line (or whatever
    ``announce`` prints instead), and flushes so that a parent process can read them
    before the first request.
    """
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():  # signals need the main thread
        previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    sandbox = open_sandbox(
        seed,
        n_links,
        host,
        port,
        real_time,
        webhook_url,
        webhook_secret,
        shape=shape,
        latency=latency,
    )
    if real_time:
        threading.Thread(
            target=follow_real_time, args=(sandbox, stop), name="sandbox-clock", daemon=True
        ).start()
    try:
        if announce is None:
            out.write(f"{sandbox.url}\n{sandbox.secret_key}\n")
            out.writelines(f"{token}\n" for token in sandbox.link_tokens())
        else:
            announce(sandbox, out)
        out.flush()
        stop.wait()
    finally:
        sandbox.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
