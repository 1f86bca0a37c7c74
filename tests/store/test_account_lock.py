"""The account lock every movement writer takes first (movements have no foreign key)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from sync.store.movements import (
    lock_account,
    lock_account_cursor,
    lock_account_cursors,
    lock_account_window,
)
from tests.store.conftest import History


def _setting(history: History) -> str:
    return str(history.session.execute(text("SHOW synchronous_commit")).scalar_one())


def test_an_account_not_stored_cannot_be_locked_so_none_of_its_movements_is_written(
    history: History,
) -> None:
    with pytest.raises(LookupError, match="acc_missing"):
        lock_account(history.session, "acc_missing")
    with pytest.raises(LookupError, match="acc_missing"):
        lock_account_window(history.session, "acc_missing", history.today, history.today)
    with pytest.raises(LookupError, match="acc_missing"):
        lock_account_cursor(history.session, "acc_missing")
    history.account("acc_here")
    with pytest.raises(LookupError, match="acc_missing"):
        lock_account_cursors(history.session, ["acc_here", "acc_missing"])
    assert lock_account_cursors(history.session, ["acc_here"]) == {}  # stored, never read


def test_the_window_check_sees_live_movements_only_inside_the_window(history: History) -> None:
    history.account("acc_w")
    history.movement("mov_live", "acc_w", history.midnight(3), 100)
    history.movement("mov_gone", "acc_w", history.midnight(10), 100)
    history.session.execute(
        text("UPDATE fintoc.movements SET removed_at = now() WHERE id = 'mov_gone'")
    )
    live, gone = history.midnight(3).date(), history.midnight(10).date()
    one = timedelta(days=1)

    def has_live(since: date, until: date) -> bool:
        return lock_account_window(history.session, "acc_w", since, until)

    assert has_live(live, live + one) is True
    assert has_live(gone, live + one) is True
    assert has_live(gone, live) is False  # only a removed movement there
    assert has_live(live + one, history.today + one) is False  # [since, until): until excluded
    assert has_live(gone - one, gone) is False


def test_only_an_empty_window_asked_quietly_turns_the_commit_wait_off(history: History) -> None:
    history.account("acc_q")
    history.movement("mov_q1", "acc_q", history.midnight(3), 100)
    before = _setting(history)
    if before == "off":
        pytest.skip("this server has synchronous_commit off already")
    day = history.midnight(3).date()
    lock_account_window(history.session, "acc_q", day, history.today, quiet_commit=True)
    assert _setting(history) == before  # the window holds a movement: history to keep
    empty = history.midnight(20).date()
    lock_account_window(history.session, "acc_q", empty, day, quiet_commit=False)
    assert _setting(history) == before  # not asked
    lock_account_window(history.session, "acc_q", empty, day, quiet_commit=True)
    assert _setting(history) == "off"


def test_the_window_check_holds_the_account_lock_until_the_transaction_ends(
    sessions: sessionmaker[Session],
) -> None:
    """Another writer of the account waits: its lock is refused at once with NOWAIT."""
    with sessions.begin() as session:
        History(session).account("acc_l")
    with sessions() as holder, holder.begin():
        day = datetime.now(UTC).date()
        lock_account_window(holder, "acc_l", day, day + timedelta(days=1), quiet_commit=True)
        with sessions() as other, other.begin(), pytest.raises(OperationalError):
            other.execute(
                text("SELECT 1 FROM fintoc.accounts WHERE id = 'acc_l' FOR NO KEY UPDATE NOWAIT")
            )
    with sessions() as other, other.begin():  # released at the end of the transaction
        other.execute(
            text("SELECT 1 FROM fintoc.accounts WHERE id = 'acc_l' FOR NO KEY UPDATE NOWAIT")
        )
