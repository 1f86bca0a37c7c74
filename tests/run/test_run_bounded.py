"""run_bounded: every item once, few queued at a time, the first error stops the rest."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from sync.run.concurrency import run_bounded


def test_every_item_runs_once_with_a_bounded_queue() -> None:
    """All items run; the producer is never more than 2 × workers ahead of the workers."""
    seen: list[int] = []
    lock = threading.Lock()
    produced = 0
    max_ahead = 0

    def items() -> Iterator[int]:
        nonlocal produced, max_ahead
        for i in range(500):
            produced += 1
            with lock:
                max_ahead = max(max_ahead, produced - len(seen))
            yield i

    def work(i: int) -> None:
        with lock:
            seen.append(i)

    run_bounded(3, items(), work, name="t")
    assert sorted(seen) == list(range(500))
    assert max_ahead <= 2 * 3 + 3  # queued plus the ones running


def test_first_error_is_raised_sets_stop_and_stops_submitting() -> None:
    """An error in one item is re-raised, stop is set, and later items are not started."""
    stop = threading.Event()
    started: list[int] = []

    def work(i: int) -> None:
        started.append(i)
        if i == 3:
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        run_bounded(1, range(1000), work, name="t", stop=stop)
    assert stop.is_set()
    assert len(started) < 20
