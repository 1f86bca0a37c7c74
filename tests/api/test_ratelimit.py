"""The shared token-bucket rate limiter, on a fake clock."""

from __future__ import annotations

import threading

import pytest

from sync.api.ratelimit import RateLimiter
from sync.errors import ConfigError


class FakeClock:
    """A clock that only moves when the fake sleep is called."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.sleeps.append(seconds)
            self.now += seconds


def test_burst_passes_without_waiting() -> None:
    """The first `burst` acquisitions do not sleep."""
    clock = FakeClock()
    limiter = RateLimiter(10, burst=5, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        limiter.acquire()
    assert clock.sleeps == []


def test_rate_is_enforced_after_burst() -> None:
    """After the burst, each acquisition waits 1/rate on average."""
    clock = FakeClock()
    limiter = RateLimiter(4, burst=2, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        limiter.acquire()
    # 2 free, then 8 more at 4/s = 2 seconds
    assert clock.now == pytest.approx(2.0)


def test_idle_time_refills_up_to_burst_only() -> None:
    """A long idle period refills at most `burst` tokens."""
    clock = FakeClock()
    limiter = RateLimiter(1, burst=3, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        limiter.acquire()
    clock.now += 1000
    for _ in range(4):
        limiter.acquire()
    assert clock.sleeps == [pytest.approx(1.0)]


def test_clock_going_back_does_not_break_the_bucket() -> None:
    """A clock stepping backwards neither crashes nor grants extra tokens."""
    clock = FakeClock()
    limiter = RateLimiter(1, burst=1, clock=clock, sleep=clock.sleep)
    limiter.acquire()
    clock.now -= 50
    limiter.acquire()
    assert clock.sleeps == [pytest.approx(1.0)]


def test_threads_share_one_budget() -> None:
    """Eight threads acquiring 50 tokens in total take (50 - burst) / rate seconds."""
    clock = FakeClock()
    limiter = RateLimiter(10, burst=10, clock=clock, sleep=clock.sleep)

    def worker() -> None:
        for _ in range(50 // 5):
            limiter.acquire()

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # concurrent sleepers may each advance the fake clock, so it is at least the ideal time
    assert clock.now >= 4.0 - 1e-6


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0)])
def test_bad_settings_are_config_errors(rate: float, burst: int) -> None:
    """Non-positive rate or burst is a ConfigError."""
    with pytest.raises(ConfigError):
        RateLimiter(rate, burst)


def test_a_429_halves_the_rate_and_successes_win_it_back() -> None:
    """AIMD: throttled() halves the rate down to a floor; succeeded() climbs back to the ceiling."""
    clock = FakeClock()
    limiter = RateLimiter(100, burst=10, clock=clock, sleep=clock.sleep)
    limiter.throttled()
    assert limiter.rate == 50
    for _ in range(10):
        limiter.throttled()
    assert limiter.rate == limiter.floor > 0
    for _ in range(200):
        limiter.succeeded()
    assert limiter.rate == 100  # never above the configured budget


def test_after_a_429_requests_wait_at_the_lower_rate() -> None:
    """After a 429 the burst is gone: the next requests are spaced at the halved rate."""
    clock = FakeClock()
    limiter = RateLimiter(10, burst=10, clock=clock, sleep=clock.sleep)
    limiter.throttled()
    for _ in range(5):
        limiter.acquire()
    assert clock.now == pytest.approx(5 / 5, rel=0.01)  # 5 requests at 5 rps
