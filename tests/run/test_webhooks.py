"""Webhooks end to end over real HTTP and Postgres: the sandbox delivers signed events to
the receiver on waitress, the worker applies them with the poll's pipeline."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from sync.api.client import FintocClient
from sync.app.http import HttpServer, serve_metrics
from sync.app.metrics import SyncMetrics
from sync.app.wiring import Wiring
from sync.config import Settings
from sync.run.webhooks import RetrySchedule, WebhookWorker
from sync.sandbox import Sandbox, render
from sync.sandbox.webhooks import make_event, signature_header

SECRET = "whsec_test_0123456789abcdef"


@dataclass
class Realtime:
    """A receiver on waitress, a sandbox delivering to it, a worker, one database."""

    sb: Sandbox
    engine: Engine
    wiring: Wiring
    server: HttpServer
    client: FintocClient
    worker: WebhookWorker

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.address[1]}/webhooks/fintoc"

    def delivered(self) -> None:
        assert self.sb.webhooks is not None and self.sb.webhooks.wait_idle(30)

    def drain(self, limit: int = 5000) -> int:
        n = 0
        while n < limit and self.worker.process_one():
            n += 1
        return n

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(text(sql), params))

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.scalar(text(sql), params)

    def poll(self) -> None:
        pipeline = self.wiring.pipeline(self.engine, self.client, clock=lambda: self.sb.world.now)
        pipeline.run(kind="sync")

    def post(self, body: bytes, header: str | None) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if header is not None:
            headers["Fintoc-Signature"] = header
        return httpx.post(self.url, content=body, headers=headers, timeout=10)


@pytest.fixture
def rt(engine: Engine, fernet_key: str) -> Iterator[Realtime]:
    """The realtime stack on loopback; the sandbox retries fast (base 50 ms)."""
    settings = Settings(
        secret_key="placeholder",
        encryption_key=fernet_key,
        webhook_secret=SECRET,
        requests_per_second=1000,
    )
    wiring = Wiring(settings)
    receiver = wiring.webhook_receiver(engine)
    server = serve_metrics(SyncMetrics(process_metrics=False), "127.0.0.1", 0, webhooks=receiver)
    url = f"http://127.0.0.1:{server.address[1]}/webhooks/fintoc"
    with Sandbox(seed=42, webhook_url=url, webhook_secret=SECRET, webhook_retry_base=0.05) as sb:
        wiring.settings = settings.with_overrides(api_url=sb.url, secret_key=sb.secret_key)
        client = wiring.client()
        # the sandbox's clock, so date windows find its movements
        worker = wiring.webhook_worker(engine, client, clock=lambda: sb.world.now)
        yield Realtime(sb, engine, wiring, server, client, worker)
        client.close()
    server.shutdown()


def _register_all(rt: Realtime) -> None:
    from datetime import UTC, datetime

    from sync.store import vault
    from sync.store.db import make_sessionmaker

    cipher = rt.wiring.cipher()
    assert cipher is not None
    with make_sessionmaker(rt.engine).begin() as session:
        vault.add_tokens(session, cipher, rt.sb.link_tokens(), datetime.now(UTC))


def test_link_created_stores_the_token_encrypted_and_syncs_the_link(rt: Realtime) -> None:
    """link.created: the token lands in the vault (not in payload), then the link is synced."""
    link_id, _ = rt.sb.create_link()
    rt.delivered()
    token = rt.sb.world.links[link_id].token
    [(status, payload)] = rt.rows("SELECT status, payload::text FROM fintoc.webhook_events")
    assert status == "received"
    assert token not in payload and "link_token" not in payload
    assert rt.scalar("SELECT count(*) FROM fintoc.link_tokens") == 1
    assert rt.drain() == 1
    assert rt.rows("SELECT status, attempts FROM fintoc.webhook_events") == [("processed", 1)]
    assert rt.scalar("SELECT last_synced_at IS NOT NULL FROM fintoc.links WHERE id=:i", i=link_id)
    n_accounts = len(rt.sb.world.links[link_id].account_ids)
    assert (
        rt.scalar("SELECT count(*) FROM fintoc.accounts WHERE link_id=:i", i=link_id) == n_accounts
    )
    assert rt.scalar("SELECT link_id FROM fintoc.link_tokens") == link_id


def test_credentials_changed_records_the_status_transition(rt: Realtime) -> None:
    """link.credentials_changed re-syncs that link: the transition to login_required is kept."""
    _register_all(rt)
    rt.poll()
    world = rt.sb.world
    link = next(x for x in world.list_links() if x.status == "active" and not x.legacy)
    with world.lock:
        link.status = "login_required"
        world.realtime.announce("link.credentials_changed", render.link(link, None))
    rt.delivered()
    assert rt.drain() == 1
    rows = rt.rows(
        "SELECT from_status, to_status FROM fintoc.link_status_transitions WHERE link_id=:i "
        "ORDER BY observed_at",
        i=link.id,
    )
    assert rows[-1] == ("active", "login_required")
    assert rt.scalar("SELECT status FROM fintoc.links WHERE id=:i", i=link.id) == "login_required"
    assert rt.scalar("SELECT status FROM fintoc.webhook_events") == "processed"


def test_refresh_events_sync_that_accounts_new_movements(rt: Realtime) -> None:
    """account.refresh_intent.succeeded: the account's new movements reach fintoc.movements."""
    _register_all(rt)
    rt.poll()
    before = rt.scalar("SELECT count(*) FROM fintoc.movements")
    rt.sb.advance(hours=6)  # a scheduled refresh: one event per account, new movements
    rt.delivered()
    types = {r[0] for r in rt.rows("SELECT DISTINCT type FROM fintoc.webhook_events")}
    assert "account.refresh_intent.succeeded" in types
    rt.drain()
    assert rt.scalar("SELECT count(*) FROM fintoc.webhook_events WHERE status='received'") == 0
    assert rt.scalar("SELECT count(*) FROM fintoc.movements") > before
    account = rt.rows(
        "SELECT subject FROM fintoc.webhook_events WHERE type='account.refresh_intent.succeeded' "
        "AND status='processed' LIMIT 1"
    )[0][0]
    acc = rt.sb.world.accounts[account]
    since = rt.sb.world.now.date().fromordinal(rt.sb.world.now.date().toordinal() - 7)
    truth = {m.id for m in rt.sb.world.movements(acc, since=since, confirmed_only=False)}
    stored = {
        r[0] for r in rt.rows("SELECT id FROM fintoc.movements WHERE account_id=:a", a=account)
    }
    assert truth <= stored


def test_duplicates_and_reordering_change_nothing_twice(rt: Realtime) -> None:
    """Each event delivered 3 times, the first held back: one row each, applied once."""
    _register_all(rt)
    rt.poll()
    assert rt.sb.webhooks is not None
    rt.sb.webhooks.fault("duplicate", times=50, copies=3)
    rt.sb.webhooks.fault("reorder", times=1)
    rt.sb.advance(hours=6)
    rt.delivered()
    sent = len(rt.sb.webhooks.sent)
    assert sent > 1
    assert rt.scalar("SELECT count(*) FROM fintoc.webhook_events") == sent
    assert rt.scalar("SELECT count(*) FROM fintoc.webhook_events WHERE deliveries = 3") == sent
    rt.drain()
    changes = rt.scalar("SELECT count(*) FROM fintoc.movement_changes")
    movements = rt.scalar("SELECT count(*) FROM fintoc.movements")
    # the same events again change nothing
    for event in list(rt.sb.webhooks.sent):
        rt.sb.webhooks.deliver(event)
    rt.delivered()
    assert rt.drain() == 0
    assert rt.scalar("SELECT count(*) FROM fintoc.movement_changes") == changes
    assert rt.scalar("SELECT count(*) FROM fintoc.movements") == movements
    assert rt.scalar("SELECT max(attempts) FROM fintoc.webhook_events") == 1


def _signed(body: bytes, *, secret: str = SECRET, at: float | None = None) -> str:
    return signature_header(secret, body, int(time.time() if at is None else at))


def test_unsigned_bad_stale_oversized_or_not_an_event_store_nothing(rt: Realtime) -> None:
    """Every hostile delivery gets a 4xx with a reason and leaves the table empty."""
    event = json.dumps(make_event("link.created", {"id": "link_x", "link_token": "tok"})).encode()
    cases = {
        "missing": (event, None),
        "wrong secret": (event, _signed(event, secret="whsec_other")),
        "stale": (event, _signed(event, at=time.time() - 301)),
        "garbage header": (event, "v1=abc"),
        "not json": (b"{nope", _signed(b"{nope")),
        "not an event": (b'{"id": 1}', _signed(b'{"id": 1}')),
        "oversized": (b"x" * 300_000, _signed(b"x" * 300_000)),
    }
    for name, (body, header) in cases.items():
        answer = rt.post(body, header)
        assert 400 <= answer.status_code < 500, name
        if name == "oversized":  # waitress refuses it before the app reads a byte
            assert answer.status_code == 413
        else:
            assert answer.json()["error"], name
    assert httpx.get(rt.url).status_code == 405
    assert rt.scalar("SELECT count(*) FROM fintoc.webhook_events") == 0
    assert rt.scalar("SELECT count(*) FROM fintoc.link_tokens") == 0


def test_a_forged_copy_is_refused_and_the_real_event_stored_once(rt: Realtime) -> None:
    """The sandbox's bad_signature fault: the forgery gets 401, the real delivery is stored."""
    assert rt.sb.webhooks is not None
    rt.sb.webhooks.fault("bad_signature", times=1)
    rt.sb.create_link()
    rt.delivered()
    assert rt.sb.webhooks.stats["forged_refused"] == 1
    assert rt.scalar("SELECT count(*), sum(deliveries) FROM fintoc.webhook_events") == 1


def test_unknown_types_are_ignored_and_failing_events_give_up_with_a_scrubbed_error(
    rt: Realtime,
) -> None:
    """Unknown type → ignored; an account we cannot sync is retried, then failed."""
    rt.worker.retry = RetrySchedule(max_attempts=2, base=0.0)
    for event in (
        make_event("payout.created", {"id": "po_1"}),
        make_event("account.refresh_intent.succeeded", {"refreshed_object_id": "acc_nope"}),
    ):
        body = json.dumps(event).encode()
        assert rt.post(body, _signed(body)).status_code == 200
    rt.drain()
    rows = dict(rt.rows("SELECT type, status FROM fintoc.webhook_events"))
    assert rows == {"payout.created": "ignored", "account.refresh_intent.succeeded": "failed"}
    error = rt.scalar("SELECT error FROM fintoc.webhook_events WHERE status='failed'")
    attempts = rt.scalar("SELECT attempts FROM fintoc.webhook_events WHERE status='failed'")
    assert "acc_nope" in error and attempts == 2


def test_a_burst_of_a_thousand_events_is_stored_and_processed(rt: Realtime) -> None:
    """1,000 signed deliveries in a burst: 1,000 rows, every one processed, none lost."""
    _register_all(rt)
    rt.poll()
    accounts = [r[0] for r in rt.rows("SELECT id FROM fintoc.accounts ORDER BY id")]
    assert rt.sb.webhooks is not None
    for i in range(1000):
        data = {"refreshed_object_id": accounts[i % len(accounts)], "refreshed_object": "account"}
        rt.sb.webhooks.emit("account.refresh_intent.succeeded", data)
    rt.delivered()
    assert rt.sb.webhooks.stats["dropped"] == 0
    assert rt.scalar("SELECT count(*) FROM fintoc.webhook_events") == 1000
    rt.drain()
    assert rt.rows("SELECT status, count(*) FROM fintoc.webhook_events GROUP BY 1") == [
        ("processed", 1000)
    ]


def _inbox_rules(rt: Realtime, *, drained: bool = True) -> list[tuple[str, str]]:
    from sync.sandbox.invariants import check_invariants

    violations = check_invariants(rt.engine, rt.sb.truth(movements=False), inbox_drained=drained)
    return sorted((v.rule, v.category) for v in violations if v.rule.startswith("W-"))


def test_the_invariant_checker_holds_the_inbox_to_what_the_sandbox_delivered(
    rt: Realtime,
) -> None:
    """Duplicated, forged and reordered deliveries leave a clean inbox; tampering is caught."""
    assert rt.sb.webhooks is not None
    rt.sb.webhooks.fault("duplicate", times=2, copies=3)
    rt.sb.webhooks.fault("bad_signature", times=2)
    rt.sb.webhooks.fault("reorder", times=1)
    first, _ = rt.sb.create_link()
    second, _ = rt.sb.create_link()
    rt.delivered()
    report = {e["id"]: e for e in rt.sb.truth()["webhooks"]}
    forged = [e for e in report.values() if e["forged"]]
    assert len(forged) == 2 and all(e["answers"] == [401] for e in forged)
    assert sorted(len(e["answers"]) for e in report.values() if not e["forged"]) == [3, 3]
    assert _inbox_rules(rt) == [("W-drained", "lost"), ("W-drained", "lost")]  # not applied yet
    assert rt.drain() == 2
    assert _inbox_rules(rt) == []
    created = rt.scalar("SELECT id FROM fintoc.webhook_events WHERE subject = :s", s=first)
    token = rt.sb.world.links[first].token
    events = "UPDATE fintoc.webhook_events SET"
    # each tampering adds one violation of its rule (they accumulate)
    tampering = [
        (
            f"{events} payload = jsonb_set(payload, '{{data,note}}',"
            " to_jsonb(CAST(:token AS text))) WHERE id = :created",
            ("W-token", "mismatch"),
        ),
        (f"{events} deliveries = 2 WHERE id = :created", ("W-once", "lost")),
        ("DELETE FROM fintoc.link_tokens WHERE link_id = :first", ("W-token-registered", "lost")),
        (f"{events} status = 'received' WHERE id = :created", ("W-drained", "lost")),
        (
            "INSERT INTO fintoc.webhook_events (id, type, received_at, status, attempts,"
            " next_attempt_at, payload, deliveries) VALUES (:forged, 'link.created', now(),"
            " 'processed', 1, now(), '{}', 1)",
            ("W-forged", "mismatch"),
        ),
        ("DELETE FROM fintoc.webhook_events WHERE subject = :second", ("W-stored", "lost")),
    ]
    params = {"token": token, "created": created, "first": first, "second": second}
    params["forged"] = forged[0]["id"]
    expected: list[tuple[str, str]] = []
    for sql, violation in tampering:
        with rt.engine.begin() as conn:
            conn.execute(text(sql), {k: v for k, v in params.items() if f":{k}" in sql})
        expected.append(violation)
        assert _inbox_rules(rt) == sorted(expected), sql


def test_a_link_event_reads_that_link_only_not_the_link_list(rt: Realtime) -> None:
    """link.created syncs its link through its token: a link list that is down is no matter."""
    rt.sb.faults.add("status_500", path=r"^/v1/links$", times=None)
    link_id, _ = rt.sb.create_link()
    rt.delivered()
    assert rt.drain() == 1
    assert rt.rows("SELECT status, attempts FROM fintoc.webhook_events") == [("processed", 1)]
    n_accounts = len(rt.sb.world.links[link_id].account_ids)
    assert (
        rt.scalar("SELECT count(*) FROM fintoc.accounts WHERE link_id=:i", i=link_id) == n_accounts
    )
    assert rt.scalar("SELECT status FROM fintoc.links WHERE id=:i", i=link_id) == "active"
