"""`sandbox --real-time`: the sandbox clock catches up with now and only moves forward."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sync.sandbox import Sandbox
from sync.sandbox.app import follow_real_time


def test_follow_real_time_catches_the_clock_up_to_now() -> None:
    """One pass of the follower moves the world, and its movements, up to the current time."""
    stop = threading.Event()
    stop.set()  # one pass, then return
    with Sandbox(seed=42) as sb:
        before = sb.world.now
        follow_real_time(sb, stop)
        now = datetime.now(UTC)
        assert before < sb.world.now <= now
        assert now - sb.world.now < timedelta(minutes=1)
        movements = sb.truth(movements=True)["movements"]
        newest = max(m["post_date"] for ms in movements.values() for m in ms)
        assert newest[:10] >= (now - timedelta(days=3)).date().isoformat()
