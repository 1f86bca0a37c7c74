"""The soak: the real daemon for many cycles under a seeded, random fault schedule.

    python scripts/soak.py                   # full size (`make soak`)
    python scripts/soak.py --quick --seed 7  # the reduced form CI runs (< 60 s)

One `python -m sync daemon --every 2s` process runs against the sandbox (evolving between
cycles: clock ticks and links switched inactive/active) and an embedded Postgres, both
built by ``scripts/chaos.py`` (its Runner, Ctx and Postgres are imported, not copied).
Before every cycle a seeded schedule arms faults of every kind the chaos suite knows:
API faults (``sync.sandbox.faults.KINDS``, bad payloads included), database faults
(backends terminated mid-cycle, the server restarted) and process faults (the daemon
SIGKILLed and started again). After every cycle that started after the last change of
the sandbox, the invariant check runs (nothing wrong or duplicated; missing is allowed
while faults are armed). At the end the faults are cleared, two clean cycles run, the
full check runs (lost rows count now), the daemon gets SIGTERM, and the script prints:
faults injected by kind, cycles, violations, rows lost, duplicates, leaked locks
(advisory locks and sync-lock holders left on the database), leaked connections
(``application_name`` fintoc-sync, or fintoc-sync run N: a run's lease), the daemon's peak RSS
and open fds at start and end.

Bounded by ``--seconds`` and ``--cycles``: it stops by itself. Exit 1 on any violation,
leak, or a final state that does not converge.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import chaos  # noqa: E402  (the chaos suite's pieces: Runner, Ctx, Postgres)
from sqlalchemy import text  # noqa: E402

from sync.sandbox.clock import TICK  # noqa: E402
from sync.sandbox.faults import KINDS  # noqa: E402
from sync.sandbox.invariants import count_by_category  # noqa: E402

L, A, M, ACC = r"^/v1/links$", r"^/v1/links/[^/]+$", r"/movements", r"^/v1/accounts$"
# unknown_enum is left out: a new status passes through by design (chaos.py says why),
# so the check right after it would flag what is not a fault of the sync.
MUTATIONS = ("drop_key:id", "wrong_type:amount", "huge_amount", "invalid_date:post_date")
API_KINDS = sorted(KINDS)
DB_KINDS = ("db:terminate_backends", "db:restart")
PROCESS_KINDS = ("process:sigkill",)


def api_fault(rng: random.Random) -> dict[str, Any]:
    """One random API fault rule (kind, path, times, params)."""
    kind = rng.choice(API_KINDS)
    spec: dict[str, Any] = {"kind": kind, "path": rng.choice((L, A, M, M, ACC)), "times": 1}
    if kind == "timeout":
        spec["seconds"] = 2.5  # just past FINTOC_SYNC_HTTP_TIMEOUT=2
    elif kind == "latency":
        spec["seconds"] = rng.uniform(0.01, 0.3)
    elif kind == "status_429":
        spec["retry_after"] = rng.choice((None, "0", "1"))
        if spec["retry_after"] is None:
            del spec["retry_after"]
    elif kind == "bad_payload":
        spec["mutate"] = rng.choice(MUTATIONS)
    return spec


# ---------------------------------------------------------------- the daemon process


@dataclass
class DaemonProc:
    """The daemon under soak, restarted after each SIGKILL."""

    ctx: chaos.Ctx
    proc: subprocess.Popen[str] | None = None
    starts: int = 0
    first: dict[str, int] = field(default_factory=dict)

    def start(self) -> None:
        self.proc = self.ctx.spawn("daemon", "--every", "2s")
        self.starts += 1

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.start()

    def stats(self) -> dict[str, int]:
        """Peak RSS (kB) and open file descriptors of the current process."""
        assert self.proc is not None
        pid = self.proc.pid
        status = Path(f"/proc/{pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        return {
            "peak_rss_kb": int(fields["VmHWM"].split()[0]),
            "rss_kb": int(fields["VmRSS"].split()[0]),
            "fds": len(os.listdir(f"/proc/{pid}/fd")),
        }

    def terminate(self) -> int | None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None


# ---------------------------------------------------------------- the soak


@dataclass
class Tally:
    """What the soak counts."""

    faults: collections.Counter[str] = field(default_factory=collections.Counter)
    cycles: int = 0
    checks: int = 0
    stalls: int = 0
    violations: int = 0
    lost: int = 0
    duplicates: int = 0
    max_connections: int = 0
    examples: list[str] = field(default_factory=list)


class Soak:
    """One daemon, one sandbox, one database, many cycles."""

    def __init__(self, runner: chaos.Runner, seed: int, *, kills: bool = True) -> None:
        self.ctx = runner._ctx(0, warm=True)  # the chaos suite's database + sandbox + env
        self.ctx.env["FINTOC_SYNC_HEALTH_MAX_AGE"] = "600"
        self.rng = random.Random(f"soak:{seed}")
        self.daemon = DaemonProc(self.ctx)
        self.tally = Tally()
        self.changed_at = datetime.now(UTC)
        self.kills = kills

    # -------------------------------------------------------------- database views

    def _scalar(self, sql: str) -> Any:
        with self.ctx.engine.connect() as conn:
            return conn.execute(text(sql)).scalar()

    def finished_after(self, moment: datetime) -> int:
        """Daemon runs that started after ``moment`` and have ended."""
        with self.ctx.engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT count(*) FROM fintoc.sync_runs WHERE kind = 'daemon' "
                        "AND started_at > :t AND finished_at IS NOT NULL"
                    ),
                    {"t": moment},
                ).scalar()
                or 0
            )

    def our_connections(self) -> int:
        return int(
            self.ctx.sql(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = :db AND (application_name = 'fintoc-sync' "
                "OR application_name LIKE 'fintoc-sync run %')",  # a run's lease session
                db=self.ctx.db,
            )[0][0]
        )

    def held_locks(self) -> int:
        """Advisory locks and sync-lock holders on our database (0 once the daemon is gone)."""
        return int(
            self.ctx.sql(
                "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                "WHERE d.datname = :db AND (l.locktype = 'advisory' OR (l.locktype = "
                "'relation' AND l.relation = to_regclass('fintoc.sync_lock') "
                "AND l.mode = 'ExclusiveLock'))",
                db=self.ctx.db,
            )[0][0]
        )

    # -------------------------------------------------------------- one step

    def wait_cycle(self, after: datetime, timeout: float = 60) -> bool:
        """Until a daemon run that started after ``after`` has ended."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.finished_after(after) >= 1:
                return True
            self.tally.max_connections = max(self.tally.max_connections, self.our_connections())
            time.sleep(0.1)
        return False

    def evolve(self) -> None:
        """Change the sandbox between cycles: a clock tick (while it stays behind the wall
        clock, so the daemon's real "today" covers it) or a link switched off or on."""
        sb = self.ctx.sb
        if sb.world.now + TICK < datetime.now(UTC) and self.rng.random() < 0.3:
            sb.advance(hours=6)
        else:
            live = [link for link in sb.world.links.values() if link.deleted_at is None]
            link = self.rng.choice(live)
            sb.world.set_active(link, not link.active)
        self.changed_at = datetime.now(UTC)

    def arm(self, quick: bool) -> None:
        """This cycle's faults: a few API rules, sometimes a database or process fault."""
        for _ in range(self.rng.randint(3, 8)):
            self.ctx.sb.faults.add_json(api_fault(self.rng))
        roll = self.rng.random()
        if roll < 0.08:
            self._during_cycle("db:terminate_backends")
        elif roll < 0.10 and not quick:
            self.ctx.pg.restart()
            self.tally.faults["db:restart"] += 1
        elif roll < 0.14 and self.kills:
            self._during_cycle("process:sigkill")

    def _during_cycle(self, kind: str) -> None:
        if not self.ctx.wait_backends(2, timeout=5):
            return  # no cycle in flight right now: try another time
        time.sleep(self.rng.uniform(0.0, 0.5))
        if kind == "db:terminate_backends":
            if self.ctx.kill_sync_backends():
                self.tally.faults[kind] += 1
        else:
            self.daemon.kill()
            self.tally.faults[kind] += 1

    def harvest(self) -> None:
        """Count the API faults that hit a request; disarm the rest."""
        for rule in self.ctx.sb.faults.rules:
            if rule.hits:
                self.tally.faults[rule.kind] += rule.hits
        self.ctx.sb.faults.clear()

    def excused(self) -> set[str] | None:
        """What the cycles since the last change may leave stale: the links that failed in
        them, their accounts and movements; None when a run failed as a whole (killed,
        connections cut) and any link may be stale."""
        with self.ctx.engine.connect() as conn:
            runs = conn.execute(
                text(
                    "SELECT status, errors FROM fintoc.sync_runs WHERE kind = 'daemon' "
                    "AND started_at > :t AND finished_at IS NOT NULL"
                ),
                {"t": self.changed_at},
            ).all()
            if any(status not in ("succeeded", "partial") for status, _ in runs):
                return None
            failures = [f for _, errors in runs for f in errors or []]
            if any(not f.get("link_id") and not f.get("account_id") for f in failures):
                return None
            links = [f["link_id"] for f in failures if f.get("link_id")]
            accounts = {f["account_id"] for f in failures if f.get("account_id")}
            accounts |= set(
                conn.scalars(
                    text("SELECT id FROM fintoc.accounts WHERE link_id = ANY(:l)"), {"l": links}
                )
            )
            movements = set(
                conn.scalars(
                    text("SELECT id FROM fintoc.movements WHERE account_id = ANY(:a)"),
                    {"a": sorted(accounts)},
                )
            )
        return set(links) | accounts | movements

    def check(self, *, final: bool) -> None:
        """The invariant check. Between cycles (faults armed) rows may be missing, and the
        data of what failed in the last cycle may be stale; nothing may ever be doubled,
        nor history (snapshots, transitions) be inconsistent."""
        violations = self.ctx.violations(allow_running=not final)
        if not final:
            excused = self.excused()
            violations = [
                v
                for v in violations
                if v.category == "duplicate"
                or v.rule.startswith("H-")
                or (excused is not None and v.category != "lost" and v.key not in excused)
            ]
        counts = count_by_category(violations)
        self.tally.checks += 1
        self.tally.violations += len(violations)
        self.tally.lost += counts["lost"]
        self.tally.duplicates += counts["duplicate"]
        self.tally.examples += [str(v) for v in violations[: 5 - len(self.tally.examples)]]

    # -------------------------------------------------------------- the whole run

    def run(self, seconds: float, cycles: int, quick: bool) -> dict[str, Any]:
        started = time.monotonic()
        self.daemon.start()
        if not self.wait_cycle(datetime.fromtimestamp(0, UTC), 60):
            raise SystemExit("the daemon did not finish a first cycle")
        start_stats = self.daemon.stats()
        while time.monotonic() - started < seconds and self.tally.cycles < cycles:
            self.evolve()
            self.arm(quick)
            if self.wait_cycle(self.changed_at):
                self.tally.cycles += 1
                self.harvest()
                self.check(final=False)
            else:
                self.tally.stalls += 1
                self.harvest()
        self.harvest()
        mark = datetime.now(UTC)
        deadline = time.monotonic() + 120
        while self.finished_after(mark) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        end_stats = self.daemon.stats()
        self.check(final=True)
        if self.tally.violations:
            with self.ctx.engine.connect() as conn:
                for row in conn.execute(
                    text(
                        "SELECT id, started_at, status, error_summary FROM fintoc.sync_runs "
                        "ORDER BY id DESC LIMIT 4"
                    )
                ):
                    print(f"  last runs: {tuple(row)}", file=sys.stderr)
        code = self.daemon.terminate()
        self.ctx.engine.dispose()  # the checker's own connections carry our application_name
        time.sleep(0.5)
        return {
            "start": start_stats,
            "end": end_stats,
            "exit": code,
            "locks": self.held_locks(),
            "connections": self.our_connections(),
            "seconds": time.monotonic() - started,
        }


def report(soak: Soak, result: dict[str, Any], form: str) -> bool:
    """Print the figures; True when the soak held."""
    t = soak.tally
    print(f"\nsoak summary ({form}):")
    print(f"  duration           {result['seconds']:.0f} s, {t.cycles} cycles checked")
    print(f"  daemon starts      {soak.daemon.starts} (SIGKILLs restart it)")
    print(f"  faults injected    {sum(t.faults.values())}")
    for kind, n in sorted(t.faults.items()):
        print(f"    {kind:24} {n}")
    print(f"  invariant checks   {t.checks} (stalled cycles: {t.stalls})")
    print(f"  violations         {t.violations}")
    print(f"  rows lost          {t.lost}")
    print(f"  duplicates         {t.duplicates}")
    print(f"  leaked locks       {result['locks']}")
    print(f"  leaked connections {result['connections']} (peak while running: {t.max_connections})")
    s, e = result["start"], result["end"]
    start_mib, end_mib = s["peak_rss_kb"] / 1024, e["peak_rss_kb"] / 1024
    print(f"  daemon peak RSS    start {start_mib:.0f} MiB, end {end_mib:.0f} MiB")
    print(f"  daemon open fds    start {s['fds']}, end {e['fds']}")
    print(f"  daemon exit (TERM) {result['exit']}")
    for example in t.examples:
        print(f"  violation: {example}", file=sys.stderr)
    return not (t.violations or result["locks"] or result["connections"] or result["exit"] != 0)


def main(argv: list[str] | None = None) -> int:
    """Run the soak; 0 when it held."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the reduced form CI runs")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--seconds", type=float, help="time bound (quick 25, full 1080)")
    parser.add_argument("--cycles", type=int, help="cycle bound (quick 12, full 600)")
    parser.add_argument(
        "--no-kills", action="store_true", help="no SIGKILL: one daemon process throughout"
    )
    args = parser.parse_args(argv)
    seconds = args.seconds or (25 if args.quick else 1080)
    cycles = args.cycles or (12 if args.quick else 600)
    with tempfile.TemporaryDirectory(prefix="fintoc-soak-") as tmp:
        runner = chaos.Runner(Path(tmp), args.seed, verbose=False)
        soak = Soak(runner, args.seed, kills=not args.no_kills)
        try:
            result = soak.run(seconds, cycles, args.quick)
        finally:
            soak.ctx.engine.dispose()
            soak.ctx.sb.stop()
            runner.close()
    form = f"--quick --seed {args.seed}" if args.quick else f"--seed {args.seed}"
    return 0 if report(soak, result, form) else 1


if __name__ == "__main__":
    sys.exit(main())
