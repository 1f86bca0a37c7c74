"""The core sync against the sandbox over HTTP and a real Postgres."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from sync.api.client import FintocClient, RetryPolicy
from sync.run.pipeline import Pipeline
from sync.sandbox import Sandbox
from tests.run.conftest import FakeClock

# The example Link object of Fintoc's docs that this project started from
# (shared/seeds/link-object.txt), kept here so the test needs nothing outside the repo.
SEED_DOC = Path(__file__).resolve().parents[1] / "fixtures" / "link-object.json"


def rows(engine: Engine, sql: str, **params: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text(sql), params).all())


def count(engine: Engine, table: str) -> int:
    return int(rows(engine, f"SELECT count(*) FROM fintoc.{table}")[0][0])


def seed_example() -> dict[str, Any]:
    """The example Link object from the document this project started from."""
    return dict(json.loads(SEED_DOC.read_text(encoding="utf-8")))


def live_accounts(truth: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Accounts of links that exist, by id, from the sandbox's truth."""
    live = {link["id"] for link in truth["links"] if not link["deleted"]}
    return {a["id"]: a for a in truth["accounts"] if a["link_id"] in live}


def test_first_sync_loads_every_link_account_and_first_observations(
    make_pipeline: Callable[..., Pipeline], sandbox: Sandbox, engine: Engine
) -> None:
    """A first run stores every listed link and account, one snapshot and one transition each."""
    report = make_pipeline(sandbox).run()
    truth = sandbox.truth(movements=False)
    live = [link for link in truth["links"] if not link["deleted"]]
    assert report.status == "succeeded" and report.exit_code == 0
    assert count(engine, "links") == len(live)
    n_accounts = len(live_accounts(truth))
    assert count(engine, "accounts") == n_accounts
    assert count(engine, "balance_snapshots") == n_accounts
    with_status = [link for link in live if not link["legacy"]]
    transitions = rows(engine, "SELECT from_status, to_status FROM fintoc.link_status_transitions")
    assert len(transitions) == len(with_status)
    assert all(from_status is None for from_status, _ in transitions)


def test_seed_example_link_syncs_exactly(
    make_pipeline: Callable[..., Pipeline], sandbox: Sandbox, engine: Engine
) -> None:
    """The Link object of seeds/link-object.txt lands field for field."""
    make_pipeline(sandbox).run()
    doc = seed_example()
    (link,) = rows(
        engine,
        "SELECT l.*, i.name AS iname, i.country FROM fintoc.links l "
        "JOIN fintoc.institutions i ON i.id = l.institution_id WHERE l.id = :id",
        id=doc["id"],
    )
    m = link._mapping
    for key in (
        "holder_id",
        "holder_type",
        "username",
        "mode",
        "active",
        "status",
        "refresh_status",
    ):
        assert m[key] == doc[key], key
    assert m["institution_id"] == doc["institution"]["id"]
    assert m["iname"] == doc["institution"]["name"]
    assert m["country"] == doc["institution"]["country"]
    assert m["created_at"].isoformat() == "2020-04-22T21:10:19.254000+00:00"
    assert m["last_time_refreshed"].isoformat() == "2020-04-22T23:10:19.254000+00:00"
    stored = {
        r.id: r._mapping
        for r in rows(engine, "SELECT * FROM fintoc.accounts WHERE link_id = :id", id=doc["id"])
    }
    assert set(stored) == {a["id"] for a in doc["accounts"]}
    for acc in doc["accounts"]:
        got = stored[acc["id"]]
        for key in (
            "name",
            "official_name",
            "number",
            "type",
            "currency",
            "holder_id",
            "holder_name",
        ):
            assert got[key] == acc[key], key
        assert (got["balance_available"], got["balance_current"], got["balance_limit"]) == (
            acc["balance"]["available"],
            acc["balance"]["current"],
            acc["balance"]["limit"],
        )


def test_unchanged_second_run_writes_no_history_and_rewrites_no_account(
    make_pipeline: Callable[..., Pipeline], sandbox: Sandbox, engine: Engine, clock: FakeClock
) -> None:
    """A poll that sees no change adds no snapshot or transition and leaves account rows alone."""
    pipeline = make_pipeline(sandbox)
    pipeline.run()
    before = rows(engine, "SELECT id, xmin::text FROM fintoc.accounts ORDER BY id")
    snaps, trans = count(engine, "balance_snapshots"), count(engine, "link_status_transitions")
    clock.tick(minutes=15)
    report = pipeline.run()
    assert report.status == "succeeded"
    assert rows(engine, "SELECT id, xmin::text FROM fintoc.accounts ORDER BY id") == before
    assert count(engine, "balance_snapshots") == snaps
    assert count(engine, "link_status_transitions") == trans
    assert report.counts.get("snapshots_written", 0) == 0


def test_balance_change_writes_one_snapshot_only_for_changed_accounts(
    make_pipeline: Callable[..., Pipeline], sandbox: Sandbox, engine: Engine, clock: FakeClock
) -> None:
    """After the sandbox moves on, exactly the accounts whose balance changed get a snapshot."""
    pipeline = make_pipeline(sandbox)
    pipeline.run()
    before = {i: a["balance"] for i, a in live_accounts(sandbox.truth(movements=False)).items()}
    sandbox.advance(days=2)
    clock.tick(days=2)
    pipeline.run()
    after = {i: a["balance"] for i, a in live_accounts(sandbox.truth(movements=False)).items()}
    changed = {i for i in after if i in before and after[i] != before[i]}
    assert changed, "the sandbox should have moved some balance"
    second = {
        r[0]
        for r in rows(
            engine,
            "SELECT account_id FROM fintoc.balance_snapshots WHERE observed_at = :t",
            t=clock.now,
        )
    }
    assert second == changed
    for account_id in changed:
        (bal,) = rows(
            engine,
            "SELECT balance_available, balance_current, balance_limit "
            "FROM fintoc.accounts WHERE id = :id",
            id=account_id,
        )
        assert tuple(bal) == (
            after[account_id]["available"],
            after[account_id]["current"],
            after[account_id]["limit"],
        )


def test_status_change_records_a_transition_from_the_old_status(
    make_pipeline: Callable[..., Pipeline], sandbox: Sandbox, engine: Engine, clock: FakeClock
) -> None:
    """A link going active → login_required gets one transition with both statuses."""
    pipeline = make_pipeline(sandbox)
    pipeline.run()
    link = next(
        x
        for x in sandbox.world.links.values()
        if x.status == "active" and x.id != "link_nMNejK7BT8oGbvO4"
    )
    link.status = "login_required"
    clock.tick(hours=1)
    pipeline.run()
    pipeline.run()  # seen again unchanged: no second row
    got = rows(
        engine,
        "SELECT from_status, to_status, observed_at FROM "
        "fintoc.link_status_transitions WHERE link_id = :id ORDER BY id",
        id=link.id,
    )
    assert [(f, t) for f, t, _ in got] == [(None, "active"), ("active", "login_required")]
    assert got[1][2] == clock.now


def test_deleted_link_gets_deleted_at_and_loses_it_when_it_returns(
    make_pipeline: Callable[..., Pipeline], sandbox: Sandbox, engine: Engine, clock: FakeClock
) -> None:
    """A link missing from the complete list is soft-deleted; it is restored when it reappears."""
    pipeline = make_pipeline(sandbox)
    pipeline.run()
    link = next(x for x in sandbox.world.links.values() if x.id != "link_nMNejK7BT8oGbvO4")
    sandbox.world.delete(link)
    clock.tick(hours=1)
    report = pipeline.run()
    assert report.exit_code == 0, report.failures  # its revoked token is not a failure
    (deleted_at,) = rows(engine, "SELECT deleted_at FROM fintoc.links WHERE id = :id", id=link.id)
    assert deleted_at[0] == clock.now
    assert count(engine, "accounts") > 0  # history and accounts are kept
    link.deleted_at = None
    clock.tick(hours=1)
    pipeline.run()
    (deleted_at,) = rows(engine, "SELECT deleted_at FROM fintoc.links WHERE id = :id", id=link.id)
    assert deleted_at[0] is None


def test_link_without_registered_token_is_listed_without_accounts(
    make_pipeline: Callable[..., Pipeline], sandbox: Sandbox, engine: Engine
) -> None:
    """With no tokens registered, links come from the list and no account is fetched."""
    report = make_pipeline(sandbox, register=False).run()
    assert report.exit_code == 0
    assert count(engine, "links") == len(sandbox.link_tokens())
    assert count(engine, "accounts") == 0


def test_legacy_link_without_status_keys_is_stored(
    make_pipeline: Callable[..., Pipeline], sandbox: Sandbox, engine: Engine
) -> None:
    """The 2020-shaped link (unprefixed id, no object/status/active keys) syncs with nulls."""
    make_pipeline(sandbox).run()
    (legacy,) = rows(
        engine,
        "SELECT status, active, refresh_status FROM fintoc.links WHERE id = '6n12zLmai3lLE9Dq'",
    )
    assert tuple(legacy) == (None, None, None)
    assert (
        rows(engine, "SELECT count(*) FROM fintoc.accounts WHERE link_id = '6n12zLmai3lLE9Dq'")[0][
            0
        ]
        >= 1
    )


def test_pagination_over_more_than_300_links(
    make_pipeline: Callable[..., Pipeline], engine: Engine
) -> None:
    """An organization of 650 links (three pages of 300) is listed completely."""
    with Sandbox(seed=7, n_links=650) as sb:
        report = make_pipeline(sb, register=False).run()
        assert report.exit_code == 0
        assert count(engine, "links") == 650 == len(sb.link_tokens())


def test_one_bad_link_fails_alone_and_the_rest_commits(
    make_pipeline: Callable[..., Pipeline], sandbox: Sandbox, engine: Engine
) -> None:
    """A malformed payload for one link fails that link (exit 1); the others are committed."""
    bad_token = sandbox.link_tokens()[0]
    bad_id = sandbox.world.link_by_token(bad_token).id  # type: ignore[union-attr]
    sandbox.faults.add(
        "bad_payload", path=r"^/v1/links/" + bad_token, times=None, mutate="invalid_date:created_at"
    )
    report = make_pipeline(sandbox).run()
    assert report.exit_code == 1 and report.status == "partial"
    assert [f.link_id for f in report.failures] == [bad_id]
    synced = rows(engine, "SELECT DISTINCT link_id FROM fintoc.accounts")
    assert bad_id not in {r[0] for r in synced}
    assert len(synced) == len(sandbox.link_tokens()) - 1
    (run,) = rows(engine, "SELECT status, links_failed, errors FROM fintoc.sync_runs")
    assert run[0] == "partial" and run[1] == 1 and "created_at" in json.dumps(run[2])
    (error,) = rows(engine, "SELECT last_sync_error FROM fintoc.links WHERE id = :id", id=bad_id)
    assert "created_at" in error[0]


def test_a_link_whose_headers_trickle_fails_alone_within_the_deadline(
    make_pipeline: Callable[..., Pipeline], sandbox: Sandbox
) -> None:
    """A server trickling the status line and headers of one link's request (a byte every
    0.1 s, each read quick) fails that link clearly once each attempt's 1 s deadline passed,
    not after the half minute the head takes; the other links sync meanwhile."""
    slow_token = sandbox.link_tokens()[0]
    slow_id = sandbox.world.link_by_token(slow_token).id  # type: ignore[union-attr]
    sandbox.faults.add("slow_headers", path=r"^/v1/accounts$", match_query=slow_token, times=None)
    pipeline = make_pipeline(sandbox)
    retry = RetryPolicy(max_attempts=2, base=0.01, cap=0.01)
    with FintocClient(sandbox.url, sandbox.secret_key, retry=retry, timeout=1.0) as client:
        pipeline.client = client
        started = time.monotonic()
        report = pipeline.run()
        elapsed = time.monotonic() - started
    assert report.status == "partial"
    assert [f.link_id for f in report.failures] == [slow_id]
    assert "longer than 1s (FINTOC_SYNC_HTTP_TIMEOUT" in report.failures[0].message
    assert report.links_synced == len(sandbox.link_tokens()) - 1
    assert elapsed < 2 * 1.0 + 5.0  # two attempts of 1 s, and slack


def test_rate_limited_then_success(
    make_pipeline: Callable[..., Pipeline], sandbox: Sandbox, engine: Engine
) -> None:
    """Two 429s (one with Retry-After: 0) on the list are retried and the run succeeds."""
    sandbox.faults.add("status_429", path=r"^/v1/links$", times=1, retry_after="0")
    sandbox.faults.add("status_429", path=r"^/v1/links$", times=1)
    report = make_pipeline(sandbox).run()
    assert report.exit_code == 0
    assert count(engine, "links") == len(sandbox.link_tokens())


def test_wrong_secret_key_fails_the_run_as_configuration(
    make_pipeline: Callable[..., Pipeline], sandbox: Sandbox, engine: Engine
) -> None:
    """A rejected secret key ends the run as failed with exit code 2 and nothing synced."""
    report = make_pipeline(sandbox, secret_key="sk_test_wrong_key_for_test").run()
    assert report.exit_code == 2 and report.status == "failed"
    assert count(engine, "links") == 0
    (run,) = rows(engine, "SELECT status, error_summary FROM fintoc.sync_runs")
    assert run[0] == "failed" and "401" in run[1]
    assert "sk_test_wrong" not in run[1]


def test_sync_of_one_link_touches_only_that_link(
    make_pipeline: Callable[..., Pipeline], sandbox: Sandbox, engine: Engine
) -> None:
    """`sync --link ID` stores that link and its accounts only."""
    target = "link_nMNejK7BT8oGbvO4"
    pipeline = make_pipeline(sandbox)
    pipeline.run(link_id=target)
    assert {r[0] for r in rows(engine, "SELECT id FROM fintoc.links")} == {target}
    assert {r[0] for r in rows(engine, "SELECT DISTINCT link_id FROM fintoc.accounts")} == {target}
