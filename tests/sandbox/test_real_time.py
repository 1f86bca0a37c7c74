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


def test_a_served_sandbox_announces_what_changes_after_it_caught_up_not_its_history() -> None:
    """`sandbox --webhook-url` (real time): the catch-up to now sends nothing; a new link does."""
    from sync.sandbox.app import open_sandbox

    # nothing listens there: only what the deliverer queued matters
    sb = open_sandbox(
        7, None, real_time=True, webhook_url="http://127.0.0.1:9/x", webhook_secret="s"
    )
    try:
        assert sb.webhooks is not None
        assert datetime.now(UTC) - sb.world.now < timedelta(hours=6)  # weeks were applied
        assert sb.webhooks.sent == []
        sb.create_link()
        assert [e["type"] for e in sb.webhooks.sent] == ["link.created"]
    finally:
        sb.stop()
