"""Run work on a few threads without queueing all of it up front.

Submitting 30,000 accounts to a ThreadPoolExecutor at once keeps 30,000 futures and
work items alive for the whole run: memory then grows with the organization. Here at
most ``2 × workers`` items are queued; the next is submitted when one finishes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")


def run_bounded(
    workers: int,
    items: Iterable[T],
    fn: Callable[[T], None],
    *,
    name: str,
    stop: threading.Event | None = None,
) -> None:
    """Call ``fn(item)`` for every item on ``workers`` threads; re-raise the first error.

    On an error (or KeyboardInterrupt in the caller's thread) ``stop`` is set, queued
    items are cancelled, and the items already running finish before this returns.
    """
    workers = max(1, workers)
    with ThreadPoolExecutor(workers, thread_name_prefix=name) as pool:
        pending: set[Future[None]] = set()
        try:
            for item in items:
                if stop is not None and stop.is_set():
                    break
                if len(pending) >= 2 * workers:
                    pending = _settle(pending, FIRST_COMPLETED)
                pending.add(pool.submit(fn, item))
            _settle(pending, "ALL_COMPLETED")
        except BaseException:
            if stop is not None:
                stop.set()
            for future in pending:
                future.cancel()
            raise


def _settle(pending: set[Future[None]], how: str) -> set[Future[None]]:
    """Wait as asked, raise the first error among the finished, return the unfinished."""
    done, not_done = wait(pending, return_when=how)
    for future in done:
        future.result()
    return not_done
