"""The analyst views on hand-built histories, with exact expected values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Engine, text

from models import SyncRun
from tests.store.conftest import History

DAILY = (
    "SELECT day, balance_current, balance_available FROM fintoc.daily_balances "
    "WHERE account_id = :a ORDER BY day"
)


def test_daily_balances_carry_forward_over_gaps(history: History) -> None:
    """A day without a snapshot holds the previous day's end balance, through today."""
    h = history
    h.account("acc_gap")
    h.snapshot("acc_gap", h.midnight(5) + timedelta(hours=10), 100)
    h.snapshot("acc_gap", h.midnight(2) + timedelta(hours=9), 300)
    days = [h.today - timedelta(days=n) for n in range(5, -1, -1)]
    assert h.rows(DAILY, a="acc_gap") == [
        (days[0], 100, 100),
        (days[1], 100, 100),
        (days[2], 100, 100),
        (days[3], 300, 300),
        (days[4], 300, 300),
        (days[5], 300, 300),
    ]


def test_daily_balances_later_snapshot_of_a_day_wins(history: History) -> None:
    """Two snapshots in one UTC day: the day ends with the later; 23:59 belongs to its day."""
    h = history
    h.account("acc_two")
    h.snapshot("acc_two", h.midnight(2) + timedelta(hours=23, minutes=59), 50)
    h.snapshot("acc_two", h.midnight(1) + timedelta(hours=20), 250, balance_available=240)
    h.snapshot("acc_two", h.midnight(1) + timedelta(hours=8), 100)
    yesterday = h.today - timedelta(days=1)
    assert h.rows(DAILY, a="acc_two") == [
        (h.today - timedelta(days=2), 50, 50),
        (yesterday, 250, 240),
        (h.today, 250, 240),
    ]


def test_daily_balances_use_utc_days_whatever_the_session_time_zone(history: History) -> None:
    """In a Santiago session a 01:00 UTC snapshot still belongs to its UTC day."""
    h = history
    h.account("acc_tz")
    h.snapshot("acc_tz", h.midnight(1) + timedelta(hours=1), 70)
    h.session.execute(text("SET LOCAL TimeZone = 'America/Santiago'"))
    assert h.rows(DAILY, a="acc_tz") == [
        (h.today - timedelta(days=1), 70, 70),
        (h.today, 70, 70),
    ]


def test_daily_balances_in_major_units_by_currency(history: History) -> None:
    """USD cents become dollars with 2 decimals, CLP stays whole, an unknown currency is NULL."""
    h = history
    for account, currency in (("acc_usd", "USD"), ("acc_clp", "CLP"), ("acc_xxx", "XXX")):
        h.account(account, currency)
        h.snapshot(account, h.midnight(0), 123456, balance_limit=1050)
    got = h.rows(
        "SELECT account_id, currency, balance_current_major, balance_limit_major "
        "FROM fintoc.daily_balances ORDER BY account_id"
    )
    assert got == [
        ("acc_clp", "CLP", Decimal("123456"), Decimal("1050")),
        ("acc_usd", "USD", Decimal("1234.56"), Decimal("10.50")),
        ("acc_xxx", "XXX", None, None),
    ]
    assert str(got[1][2]) == "1234.56"


def test_monthly_cash_flow_sums_by_utc_month(history: History) -> None:
    """Inflow, outflow (a positive magnitude), net and count per UTC month of post_date."""
    h = history
    h.account("acc_m", "USD")
    oct31 = datetime(2026, 10, 31, tzinfo=UTC)
    nov1 = datetime(2026, 11, 1, tzinfo=UTC)
    h.movement("m1", "acc_m", oct31, 10_050)
    h.movement("m2", "acc_m", oct31, -2_500)
    h.movement("m3", "acc_m", oct31 + timedelta(hours=23, minutes=59), -1)
    h.movement("m4", "acc_m", nov1, 700)  # 21:00 on Oct 31 in Santiago: still November
    h.session.execute(text("SET LOCAL TimeZone = 'America/Santiago'"))
    got = h.rows(
        "SELECT month, currency, inflow, outflow, net, movements, inflow_major, outflow_major, "
        "net_major FROM fintoc.monthly_cash_flow WHERE account_id = 'acc_m' ORDER BY month"
    )
    assert got == [
        (oct31.date().replace(day=1), "USD", 10_050, 2_501, 7_549, 3,
         Decimal("100.50"), Decimal("25.01"), Decimal("75.49")),
        (nov1.date(), "USD", 700, 0, 700, 1, Decimal("7.00"), Decimal("0.00"), Decimal("7.00")),
    ]  # fmt: skip


def test_monthly_cash_flow_excludes_removed_and_counts_restored(history: History) -> None:
    """A removed movement is left out; one that was removed and came back counts again."""
    h = history
    h.account("acc_r")
    day = datetime(2026, 11, 10, tzinfo=UTC)
    h.movement("kept", "acc_r", day, 1_000)
    h.movement("removed", "acc_r", day, 5_000, removed_at=day + timedelta(days=2))
    h.movement("restored", "acc_r", day, -300, removed_at=None)
    for kind, at in (("removed", 1), ("restored", 3)):
        h.session.execute(
            text(
                "INSERT INTO fintoc.movement_changes (movement_id, account_id, kind, "
                "changed_fields, old_values, new_values, observed_at) VALUES ('restored', "
                "'acc_r', :k, ARRAY['removed_at'], '{}', '{}', :at)"
            ),
            {"k": kind, "at": day + timedelta(days=at)},
        )
    got = h.rows(
        "SELECT inflow, outflow, net, movements FROM fintoc.monthly_cash_flow "
        "WHERE account_id = 'acc_r'"
    )
    assert got == [(1_000, 300, 700, 2)]


HEALTH = (
    "SELECT status, status_since, login_required_seconds_30d, consecutive_failures "
    "FROM fintoc.link_health WHERE link_id = :l"
)


def test_login_required_already_in_force_when_the_window_starts(history: History) -> None:
    """A link login_required since long before the 720-hour window counts all of it."""
    h = history
    h.link("link_old")
    became = datetime(2026, 11, 1, 2, tzinfo=UTC)
    h.transitions(
        "link_old",
        (datetime(2026, 10, 1, tzinfo=UTC), "active"),
        (datetime(2026, 10, 31, 23, tzinfo=UTC), "login_required"),  # across month end...
        (datetime(2026, 11, 1, 1, tzinfo=UTC), "active"),  # ...and midnight
        (became, "login_required"),
    )
    assert h.now - became > timedelta(hours=720)
    assert h.rows(HEALTH, l="link_old") == [("login_required", became, 720 * 3600, 0)]


def test_login_required_seconds_clipped_at_window_start_and_now(history: History) -> None:
    """Spans are clipped at now - 720 h and at now; flapping across midnight adds up exactly."""
    h = history
    h.link("link_flap")
    ago = lambda hours: h.now - timedelta(hours=hours)  # noqa: E731
    yesterday = h.midnight(1)
    h.transitions(
        "link_flap",
        (ago(900), "login_required"),  # wholly before the window: 0
        (ago(850), "active"),
        (ago(800), "login_required"),  # clipped at the window start: 20 h
        (ago(700), "active"),
        (yesterday - timedelta(hours=1), "login_required"),  # across midnight: 3 h
        (yesterday + timedelta(hours=2), "active"),
        (ago(5), "login_required"),  # still open: 5 h to now
    )
    expected = (20 + 3 + 5) * 3600
    assert h.rows(HEALTH, l="link_flap") == [("login_required", ago(5), expected, 0)]


def test_link_health_status_since_and_a_link_without_history(history: History) -> None:
    """status_since is the start of the current streak; no transitions gives nulls and zeros."""
    h = history
    h.link("link_ok")
    back = h.now - timedelta(hours=10)
    h.transitions(
        "link_ok",
        (h.now - timedelta(hours=30), "active"),
        (h.now - timedelta(hours=20), "login_required"),
        (back, "active"),
    )
    h.link("link_legacy", status=None)
    assert h.rows(HEALTH, l="link_ok") == [("active", back, 36000, 0)]
    assert h.rows(HEALTH, l="link_legacy") == [(None, None, 0, 0)]
    names = h.rows("SELECT institution_name FROM fintoc.link_health WHERE link_id = 'link_ok'")
    assert names == [("Banco de Prueba",)]


def _run(h: History, kind: str, status: str, hours_ago: float, failed: list[str]) -> SyncRun:
    start = h.now - timedelta(hours=hours_ago)
    run = SyncRun(
        kind=kind,
        status=status,
        started_at=start,
        finished_at=None if status == "running" else start + timedelta(minutes=1),
        errors=[{"link_id": link, "kind": "api", "message": "boom"} for link in failed],
    )
    h.session.add(run)
    h.session.flush()
    return run


def test_consecutive_failures_count_runs_since_the_last_success(history: History) -> None:
    """Runs after last_synced_at that recorded the link as failed; backfill runs don't count."""
    h = history
    h.link("link_bad", last_synced_at=h.now - timedelta(hours=5, minutes=59))
    h.link("link_new")  # never synced
    h.link("link_good", last_synced_at=h.now - timedelta(minutes=59))
    _run(h, "sync", "partial", 8, ["link_bad", "link_good"])  # before the last success
    _run(h, "sync", "succeeded", 6, [])
    _run(h, "daemon", "partial", 4, ["link_bad", "link_new", "link_good"])
    _run(h, "backfill", "partial", 3, ["link_bad"])
    _run(h, "daemon", "partial", 2, ["link_bad", "link_bad"])  # one run, two errors
    _run(h, "sync", "succeeded", 1, [])
    got = h.rows(
        "SELECT link_id, consecutive_failures FROM fintoc.link_health "
        "WHERE link_id LIKE 'link_%' ORDER BY link_id"
    )
    assert got == [("link_bad", 2), ("link_good", 0), ("link_new", 1)]


def test_data_freshness_per_table_from_succeeded_runs(history: History) -> None:
    """Each table: the latest succeeded run of a kind that loads it, and its exact row count."""
    h = history
    h.account("acc_f")
    sync = _run(h, "sync", "succeeded", 5, [])
    backfill = _run(h, "backfill", "succeeded", 3, [])
    _run(h, "daemon", "partial", 1, ["x"])  # not successful: ignored
    _run(h, "sync", "running", 0.5, [])
    got = {
        r.table_name: (r.last_loaded_at, r.last_loaded_by, r.rows)
        for r in h.rows("SELECT * FROM fintoc.data_freshness")
    }
    assert got["accounts"] == (sync.finished_at, "sync", 1)
    assert got["links"] == (sync.finished_at, "sync", 1)
    assert got["institutions"] == (sync.finished_at, "sync", 1)
    assert got["movements"] == (backfill.finished_at, "backfill", 0)
    assert got["backfill_chunks"] == (backfill.finished_at, "backfill", 0)
    assert got["sync_runs"] == (backfill.finished_at, "backfill", 4)
    assert "link_tokens" not in got
    assert len(got) == 10


def test_data_freshness_without_any_run(engine: Engine) -> None:
    """A fresh database lists every table with no load time and zero rows."""
    with engine.connect() as conn:
        got = conn.execute(text("SELECT last_loaded_at, rows FROM fintoc.data_freshness")).all()
    assert set(got) == {(None, 0)}
    assert len(got) == 10
