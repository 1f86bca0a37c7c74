"""Where a backfill read is cut into checkpointed segments, page by page.

``Backfill._write_pages`` hands whole pages to the writer and cuts a page only where a
segment ends; the cuts must be exactly where a movement-at-a-time reader cuts: after at
least ``checkpoint_rows`` movements, before the first movement of an older day.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import chain
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sync.api.schemas import Movement
from sync.run.backfill import Backfill


class _Taken:
    """Stands in for MovementWriter's counting side: what was handed over, in order."""

    def __init__(self) -> None:
        self.rows: list[Movement] = []

    @property
    def added(self) -> int:
        return len(self.rows)

    def add_page(self, movs: list[Movement]) -> None:
        assert movs, "never an empty hand-over"
        self.rows.extend(movs)


def _movement(n: int, day: date) -> Movement:
    fields: dict[str, Any] = dict.fromkeys(Movement._fields)
    post = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return Movement(**(fields | {"id": f"mov_{n}", "account_id": "acc_1", "post_date": post}))


def _row_by_row(rows: list[Movement], limit: int) -> list[tuple[int, date | None]]:
    """The reference: (movements in each segment, its lower bound or None at the end)."""
    out, added, last_day = [], 0, None
    for mov in rows:
        day = mov.post_date.date()
        if added >= limit and last_day and day < last_day:
            out.append((added, day + timedelta(days=1)))
            added, last_day = 0, None
        added += 1
        last_day = day if last_day is None else min(last_day, day)
    out.append((added, None))
    return out


@settings(max_examples=300, deadline=None)
@given(
    days=st.lists(st.integers(0, 3), min_size=0, max_size=60),
    page_size=st.integers(1, 9),
    limit=st.integers(0, 12),
)
def test_pages_are_cut_where_a_row_by_row_read_cuts(
    days: list[int], page_size: int, limit: int
) -> None:
    day, rows = date(2026, 11, 1), []
    for n, step in enumerate(days):  # newest first: each movement the same day or older
        day -= timedelta(days=step)
        rows.append(_movement(n, day))
    pages = [rows[i : i + page_size] for i in range(0, len(rows), page_size)]
    backfill = Backfill(client=None, sessions=None, cipher=None, checkpoint_rows=limit)  # type: ignore[arg-type]
    stream, carry, got = iter(pages), None, []
    handed: list[Movement] = []
    while True:
        writer = _Taken()
        split = backfill._write_pages(writer, chain([carry] if carry else [], stream))  # type: ignore[arg-type]
        handed += writer.rows
        if split is None:
            got.append((writer.added, None))
            break
        lower, carry = split
        got.append((writer.added, lower))
        assert carry and carry[0].post_date.date() == lower - timedelta(days=1)
    assert handed == rows  # every movement once, in order
    assert got == _row_by_row(rows, limit)
