"""Time helpers: the sandbox clock and Fintoc's two timestamp spellings."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

#: The sandbox clock starts here (not wall time), so every run is reproducible.
EPOCH = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC)

#: Accounts are refreshed (and the world evolves) on ticks this far apart.
TICK = timedelta(hours=6)


def fmt_ts(moment: datetime, *, millis: bool = True) -> str:
    """Format like Fintoc: ``2020-04-22T21:10:19.254Z`` or ``2020-09-11T00:00:00Z``."""
    moment = moment.astimezone(UTC)
    base = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if not millis:
        return base + "Z"
    return f"{base}.{moment.microsecond // 1000:03d}Z"


def parse_ts(text: str) -> datetime:
    """Parse a timestamp in either Fintoc spelling."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def midnight(day: date) -> datetime:
    """The UTC midnight that starts ``day`` (Fintoc's ``post_date``)."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)
