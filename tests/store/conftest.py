"""Fixtures for the view tests: one session whose transaction (and so now()) never moves."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from models import Account, BalanceSnapshot, Institution, Link, LinkStatusTransition, Movement


class History:
    """Builds a hand-made history in one open transaction and reads the views back.

    now() is the transaction's start time, so every value computed from `self.now`
    here is exactly what the views compute from now().
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self.now: datetime = session.execute(text("SELECT now()")).scalar_one()
        self.today: date = self.now.astimezone(UTC).date()

    def midnight(self, days_ago: int) -> datetime:
        """UTC midnight that starts the day `days_ago` days before today."""
        day = self.today - timedelta(days=days_ago)
        return datetime(day.year, day.month, day.day, tzinfo=UTC)

    def link(self, link_id: str, status: str | None = "active", **kw: Any) -> Link:
        """A link of a test bank."""
        if self.session.get(Institution, "cl_test") is None:
            self.session.add(Institution(id="cl_test", name="Banco de Prueba", country="cl"))
        row = Link(id=link_id, institution_id="cl_test", status=status, **kw)
        self.session.add(row)
        self.session.flush()
        return row

    def account(self, account_id: str, currency: str = "CLP") -> Account:
        """An account (and its link) in currency."""
        link_id = f"link_of_{account_id}"
        if self.session.get(Link, link_id) is None:
            self.link(link_id)
        row = Account(id=account_id, link_id=link_id, currency=currency)
        self.session.add(row)
        self.session.flush()
        return row

    def snapshot(self, account_id: str, at: datetime, current: int, **kw: Any) -> None:
        """A balance snapshot (available = current unless given)."""
        kw.setdefault("balance_available", current)
        self.session.add(
            BalanceSnapshot(
                account_id=account_id,
                observed_at=at,
                balance_current=current,
                **kw,
            )
        )
        self.session.flush()

    def movement(
        self, movement_id: str, account_id: str, post: datetime, amount: int, **kw: Any
    ) -> None:
        """A movement posted at post (a UTC midnight in the API)."""
        self.session.add(
            Movement(id=movement_id, account_id=account_id, post_date=post, amount=amount, **kw)
        )
        self.session.flush()

    def transitions(self, link_id: str, *steps: tuple[datetime, str]) -> None:
        """Status transitions of a link, in order; the link's status becomes the last one."""
        previous: str | None = None
        for at, status in steps:
            self.session.add(
                LinkStatusTransition(
                    link_id=link_id, from_status=previous, to_status=status, observed_at=at
                )
            )
            previous = status
        link = self.session.get(Link, link_id)
        assert link is not None
        link.status = previous
        self.session.flush()

    def rows(self, sql: str, **params: Any) -> list[Any]:
        """All rows of a query, in the same transaction."""
        return list(self.session.execute(text(sql), params).all())


@pytest.fixture
def history(engine: Engine) -> Iterator[History]:
    """A History in a transaction that is rolled back afterwards."""
    with engine.connect() as conn:
        conn.begin()
        session = Session(conn)
        yield History(session)
        session.close()
        conn.rollback()
