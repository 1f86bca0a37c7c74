"""A thread-safe, adaptive token bucket shared by every worker that talks to the API.

Fintoc limits the whole organization (100 requests/s, documented as 5/s in an older
table), so one bucket is shared across the thread pool that syncs links concurrently.
The rate adapts the way TCP does (AIMD): a 429 halves it (down to a floor), and every
successful response wins back a small step, so a budget shared with other clients of the
organization settles just under what the API accepts and recovers once they are gone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sync.errors import ConfigError


class RateLimiter:
    """Token bucket: ``burst`` requests at once, then ``rate_per_second`` on average.

    The clock and the sleep are injected so tests run without waiting.
    """

    def __init__(
        self,
        rate_per_second: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate_per_second > 0:
            raise ConfigError(f"rate_per_second must be positive, got {rate_per_second!r}")
        if burst < 1:
            raise ConfigError(f"burst must be at least 1, got {burst!r}")
        self.rate = float(rate_per_second)
        self.ceiling = self.rate  # the configured budget: never exceeded
        self.floor = max(0.5, self.ceiling / 64)
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(burst)
        self._updated = clock()

    def _refill(self, now: float) -> None:
        # max(): a clock that steps back must not drain the bucket
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate)
        self._updated = now

    def _try_take(self) -> float:
        """Take a token and return 0, or return how long to wait for the next one."""
        with self._lock:
            self._refill(self._clock())
            # the epsilon absorbs float rounding: without it a bucket at 0.99999999…
            # asks for a wait so small that the clock does not move, forever
            if self._tokens >= 1.0 - 1e-9:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / self.rate

    def acquire(self) -> None:
        """Block until a request may be sent."""
        while (wait := self._try_take()) > 0:
            # sleep outside the lock so other threads can refill/take meanwhile
            self._sleep(wait)

    def throttled(self) -> None:
        """The API answered 429: halve the rate (multiplicative decrease) and drop the burst."""
        with self._lock:
            self._refill(self._clock())
            self.rate = max(self.floor, self.rate / 2)
            self._tokens = min(self._tokens, 0.0)

    def succeeded(self) -> None:
        """A request got through: win back 1% of the budget (additive increase)."""
        if self.rate >= self.ceiling:
            return
        with self._lock:
            self._refill(self._clock())
            self.rate = min(self.ceiling, self.rate + self.ceiling / 100)
