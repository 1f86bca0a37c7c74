"""fintoc-sync beside dlt, loading the same Fintoc-like API into the same Postgres server.

    make bench-compare BENCH_COMPARE_ARGS="--links 20 --accounts-per-link 5 \\
        --movements-per-account 2000 --history-days 730 --repetitions 3 [--latency 50ms]"

One sandbox process (``python -m sync.sandbox`` with the benchmark-organization flags:
generated up front and served from memory, so that it is the wire, not the load) and
one Postgres server (embedded by default, ``--database-url`` for another), then:

* **floor**: every page fetched once, sequentially, by this process: the links list,
  per link token its link (``GET /v1/links/{token}``: the only way to learn which link a
  token opens, as tokens must not be parsed) and its accounts, and one paginated read
  per account at ``per_page=300``: the least wall time and the minimum number of
  requests for a tool that knows each account's link;
* **fintoc-sync**, through its CLI on a fresh database per repetition, at its defaults
  and with no request limit: cold = ``migrate`` + ``links add`` +
  ``backfill --since <first post_date>`` + ``sync``; then a no-change ``sync``;
* **dlt 1.31** (``scripts/bench_dlt_pipeline.py`` in its own virtualenv
  ``.venv-bench-dlt``, made here with ``dlt[postgres]==1.31.0``): cold run, then a
  no-change run;
* **ceiling**: Postgres ``COPY`` of the same movement rows into a table shaped like
  ``fintoc.movements`` (same columns and indexes).

For each it prints the median wall time, rows/s, requests, peak RSS of the process
(``os.wait4``), and the rows the no-change run wrote (``pg_stat_user_tables``: inserted +
updated + deleted, bookkeeping tables included). It then prints the ratios of the
performance issue, and refuses to print a ratio for a system that loaded a different
number of movements than the sandbox serves. It prints figures; it asserts nothing.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from _bench_db import scratch_database, server_url  # scripts/ is on sys.path
from _bench_proc import ROOT, SandboxProcess, run_measured
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url

DLT_REQUIREMENT = "dlt[postgres]==1.31.0"
DLT_VENV = ROOT / ".venv-bench-dlt"
PER_PAGE = 300
UNLIMITED = "1000000"  # requests/s: no limit in practice


@dataclass
class Trial:
    """One repetition of one system."""

    cold_s: float = 0.0
    cold_rss: float = 0.0
    cold_requests: int = 0
    nochange_s: float = 0.0
    nochange_rss: float = 0.0
    nochange_requests: int = 0
    nochange_rows_written: int = 0
    movements: int = 0
    failed: str = ""


@dataclass
class System:
    """A system under test and its trials."""

    name: str
    trials: list[Trial] = field(default_factory=list)

    def median(self, attr: str) -> float:
        values = [getattr(t, attr) for t in self.trials if not t.failed]
        return statistics.median(values) if values else float("nan")

    def movements(self) -> set[int]:
        return {t.movements for t in self.trials if not t.failed}

    def failures(self) -> list[str]:
        return [t.failed for t in self.trials if t.failed]


# -- the database ------------------------------------------------------------------


def _libpq(url: str) -> str:
    """A URL psycopg accepts (no SQLAlchemy driver suffix)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _dlt_url(url: str) -> str:
    """dlt insists on a password and a host; trust auth ignores the password, and a
    ``?host=/socket/dir`` query (the embedded server) overrides the placeholder host."""
    parsed = make_url(url)
    if not parsed.password:
        parsed = parsed.set(password="unused")  # noqa: S106 - not a secret
    if not parsed.host:
        parsed = parsed.set(host="localhost")
    return parsed.render_as_string(hide_password=False)


def _rows_written(url: str) -> int:
    """Rows inserted + updated + deleted so far in the database's own tables."""
    time.sleep(0.6)  # backends flush their statistics when they exit; let them land
    with psycopg.connect(_libpq(url), autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables"
        ).fetchone()
    return int(row[0]) if row else 0


def _count(url: str, table: str) -> int:
    with psycopg.connect(_libpq(url)) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608 (constant)
    return int(row[0]) if row else 0


# -- the floor ---------------------------------------------------------------------


def _pages(
    client: httpx.Client, path: str, params: dict[str, Any], parse: bool = True
) -> list[Any]:
    """Every page of one list, following the Link header; the items (when ``parse``: the
    floor reads movement pages without decoding them, decoding is the systems' work)."""
    items: list[Any] = []
    response = client.get(path, params=params)
    while True:
        response.raise_for_status()
        if parse:
            items.extend(response.json())
        nxt = response.links.get("next", {}).get("url")
        if not nxt:
            return items
        response = client.get(nxt)


def measure_floor(sandbox: SandboxProcess, tokens: list[str], since: str) -> tuple[float, int]:
    """Fetch every page once, sequentially: (seconds, requests)."""
    before = sandbox.requests()
    started = time.monotonic()
    headers = {"Authorization": sandbox.key}
    with httpx.Client(base_url=sandbox.url, headers=headers, timeout=120) as client:
        _pages(client, "/v1/links", {"per_page": PER_PAGE})
        for token in tokens:
            client.get(f"/v1/links/{token}").raise_for_status()
            for account in _pages(client, "/v1/accounts", {"link_token": token, "per_page": 300}):
                params = {
                    "link_token": token,
                    "since": since,
                    "per_page": PER_PAGE,
                    "confirmed_only": "false",
                }
                _pages(client, f"/v1/accounts/{account['id']}/movements", params, parse=False)
    return time.monotonic() - started, sandbox.requests() - before


# -- the systems -------------------------------------------------------------------


def _base_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER")
    return {k: v for k, v in os.environ.items() if k in keep}


def run_fintoc(
    sandbox: SandboxProcess,
    db_url: str,
    token_file: Path,
    since: str,
    work: Path,
    extra_env: dict[str, str],
) -> Trial:
    """fintoc-sync through its CLI: cold (migrate, links add, backfill, sync), no-change."""
    env = _base_env() | {
        "DATABASE_URL": db_url,
        "FINTOC_API_URL": sandbox.url,
        "FINTOC_SECRET_KEY": sandbox.key,
        "FINTOC_SYNC_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "FINTOC_SYNC_LOG_LEVEL": "WARNING",
    }
    env |= extra_env
    cli = [sys.executable, "-m", "sync"]
    trial = Trial()
    cold = [
        [*cli, "migrate"],
        [*cli, "links", "add", "--from-file", str(token_file)],
        [*cli, "backfill", "--since", since],
        [*cli, "sync"],
    ]
    before = sandbox.requests()
    for i, cmd in enumerate(cold):
        seconds, rss, code, tail = run_measured(cmd, env, work / f"fintoc-{i}.log")
        trial.cold_s += seconds
        trial.cold_rss = max(trial.cold_rss, rss)
        if code != 0:
            trial.failed = f"{' '.join(cmd[3:])} exited {code}: {tail}"
            return trial
    trial.cold_requests = sandbox.requests() - before
    trial.movements = _count(db_url, "fintoc.movements WHERE removed_at IS NULL")
    written = _rows_written(db_url)
    before = sandbox.requests()
    seconds, rss, code, tail = run_measured([*cli, "sync"], env, work / "fintoc-nochange.log")
    if code != 0:
        trial.failed = f"no-change sync exited {code}: {tail}"
    trial.nochange_s, trial.nochange_rss = seconds, rss
    trial.nochange_requests = sandbox.requests() - before
    trial.nochange_rows_written = _rows_written(db_url) - written
    return trial


def run_dlt(
    python: Path, sandbox: SandboxProcess, db_url: str, token_file: Path, since: str, work: Path
) -> Trial:
    """The dlt pipeline: a cold run, then a no-change run (state kept in its own dir)."""
    env = _base_env() | {"FINTOC_SECRET_KEY": sandbox.key, "RUNTIME__LOG_LEVEL": "WARNING"}
    cmd = [
        str(python),
        str(ROOT / "scripts" / "bench_dlt_pipeline.py"),
        "--api-url",
        sandbox.url,
        "--tokens-file",
        str(token_file),
        "--since",
        since,
        "--database-url",
        _dlt_url(db_url),
        "--pipelines-dir",
        str(work / "dlt-pipelines"),
    ]
    trial = Trial()
    before = sandbox.requests()
    seconds, rss, code, tail = run_measured(cmd, env, work / "dlt-cold.log", cwd=work)
    trial.cold_s, trial.cold_rss = seconds, rss
    trial.cold_requests = sandbox.requests() - before
    if code != 0:
        trial.failed = f"dlt exited {code}: {tail}"
        return trial
    trial.movements = _count(db_url, "fintoc_dlt.movements")
    written = _rows_written(db_url)
    before = sandbox.requests()
    seconds, rss, code, tail = run_measured(cmd, env, work / "dlt-nochange.log", cwd=work)
    trial.nochange_s, trial.nochange_rss = seconds, rss
    trial.nochange_requests = sandbox.requests() - before
    trial.nochange_rows_written = _rows_written(db_url) - written
    if code != 0:
        trial.failed = f"dlt no-change run exited {code}: {tail}"
    return trial


def measure_ceiling(db_url: str) -> tuple[float, int]:
    """COPY the movement rows fintoc-sync loaded into a table shaped like them: (s, rows)."""
    with psycopg.connect(_libpq(db_url)) as conn:
        buffer = io.BytesIO()
        with conn.cursor().copy("COPY fintoc.movements TO STDOUT (FORMAT binary)") as copy:
            for chunk in copy:
                buffer.write(chunk)
        conn.execute("CREATE TABLE fintoc.ceiling (LIKE fintoc.movements INCLUDING ALL)")
        conn.commit()
        started = time.monotonic()
        with conn.cursor().copy("COPY fintoc.ceiling FROM STDIN (FORMAT binary)") as copy:
            copy.write(buffer.getvalue())
        conn.commit()
        seconds = time.monotonic() - started
        row = conn.execute("SELECT count(*) FROM fintoc.ceiling").fetchone()
        conn.execute("DROP TABLE fintoc.ceiling")
        conn.commit()
    return seconds, int(row[0]) if row else 0


def ensure_dlt(venv: Path) -> Path:
    """The dlt virtualenv's python, made (once) with the pinned dlt."""
    python = venv / "bin" / "python"
    stamp = venv / ".installed-dlt-1.31.0"
    if not stamp.exists():
        print(f"making {venv} with {DLT_REQUIREMENT} (once) …", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)  # noqa: S603
        pip = [str(python), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)  # noqa: S603
        subprocess.run([*pip, DLT_REQUIREMENT], check=True)  # noqa: S603
        stamp.touch()
    return python


# -- the report --------------------------------------------------------------------


def _fmt_s(value: float) -> str:
    return "—" if value != value else f"{value:.2f} s"  # NaN check


def print_report(
    systems: list[System],
    expected: int,
    floor: tuple[float, int],
    ceiling: tuple[float, int] | None,
    args: argparse.Namespace,
) -> None:
    """The table and the ratios."""
    print()
    print(
        f"## {args.links} links × {args.accounts_per_link} accounts × "
        f"~{args.movements_per_account:,} movements over {args.history_days} days "
        f"= {expected:,} movements served; latency {args.latency * 1000:.0f} ms; "
        f"medians of {args.repetitions}"
    )
    print()
    header = (
        "| system | cold load | rows/s | requests | peak RSS | no-change sync | "
        "its requests | rows it wrote | movements loaded |"
    )
    print(header)
    print("|" + "---|" * 9)
    for s in systems:
        if not s.trials or all(t.failed for t in s.trials):
            print(f"| {s.name} | failed: {'; '.join(s.failures())[:200]} |" + " |" * 7)
            continue
        cold = s.median("cold_s")
        loaded = sorted(s.movements())
        print(
            f"| {s.name} | {_fmt_s(cold)} | {expected / cold:,.0f} | "
            f"{s.median('cold_requests'):,.0f} | {s.median('cold_rss'):.0f} MB | "
            f"{_fmt_s(s.median('nochange_s'))} | {s.median('nochange_requests'):,.0f} | "
            f"{s.median('nochange_rows_written'):,.0f} | "
            f"{', '.join(f'{n:,}' for n in loaded)} |"
        )
    if ceiling is not None:
        print(
            f"| Postgres COPY of the same rows (ceiling) | {_fmt_s(ceiling[0])} | "
            f"{ceiling[1] / ceiling[0]:,.0f} | — | — | — | — | — | {ceiling[1]:,} |"
        )
    print(
        f"| every page fetched once, sequentially (floor) | {_fmt_s(floor[0])} | "
        f"{expected / floor[0]:,.0f} | {floor[1]:,} | — | — | — | — | — |"
    )
    print()
    by_name = {s.name: s for s in systems}

    def usable(name: str) -> System | None:
        s = by_name.get(name)
        if s is None or not s.trials or all(t.failed for t in s.trials):
            return None
        if s.movements() != {expected}:
            print(
                f"   (no ratio for {name}: it loaded {sorted(s.movements())} movements, "
                f"the sandbox serves {expected:,})"
            )
            return None
        return s

    dlt, unlimited, defaults = (
        usable("dlt 1.31"),
        usable("fintoc-sync, no request limit"),
        usable("fintoc-sync, defaults"),
    )
    print("Ratios (the performance issue's targets in brackets):")

    def faster(label: str, peer: System, ours: System, attr: str, target: str) -> None:
        ratio = peer.median(attr) / ours.median(attr)
        print(f"  {label:<34} {ratio:5.2f}× faster than dlt  [{target}]")

    if dlt and unlimited:
        faster("cold, no request limit:", dlt, unlimited, "cold_s", "≥ 5×")
    if dlt and defaults:
        faster("cold, defaults:", dlt, defaults, "cold_s", "≥ 2×")
        faster("no-change sync, defaults:", dlt, defaults, "nochange_s", "≥ 2×")
    for s in (defaults, unlimited):
        if s:
            ratio = s.median("cold_requests") / floor[1]
            print(f"  requests, {s.name}: {ratio:.3f}× the minimum  [≤ 1.05×]")
            print(f"  peak RSS, {s.name}: {s.median('cold_rss'):.0f} MB  [≤ 100 MB]")
    if defaults and args.latency > 0:
        budget = 100.0  # the default FINTOC_SYNC_REQUESTS_PER_SECOND
        used = defaults.median("cold_requests") / defaults.median("cold_s") / budget
        print(
            f"  request budget used at {args.latency * 1000:.0f} ms latency (defaults, cold): "
            f"{used:.0%} of {budget:.0f}/s  [≥ 90%] (includes the time spent writing)"
        )


# -- main --------------------------------------------------------------------------


def _seconds(raw: str) -> float:
    text = raw.strip().lower()
    return float(text[:-2]) / 1000 if text.endswith("ms") else float(text.removesuffix("s"))


def main() -> None:
    """Parse the flags, run everything, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--links", type=int, default=20)
    parser.add_argument("--accounts-per-link", type=int, default=5)
    parser.add_argument("--movements-per-account", type=int, default=2000)
    parser.add_argument("--history-days", type=int, default=730)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--latency", type=_seconds, default=0.0, help="sandbox delay, e.g. 50ms")
    parser.add_argument("--database-url", help="a server to create scratch databases on")
    parser.add_argument(
        "--systems",
        default="defaults,unlimited,dlt",
        help="comma list of: defaults, unlimited, dlt",
    )
    parser.add_argument("--dlt-venv", type=Path, default=DLT_VENV)
    args = parser.parse_args()
    wanted = set(args.systems.split(","))
    dlt_python = ensure_dlt(args.dlt_venv) if "dlt" in wanted else None

    with tempfile.TemporaryDirectory(prefix="bench_compare_") as tmp:
        work = Path(tmp)
        server = server_url(work / "pg", args.database_url)
        token_file = work / "tokens.txt"
        shape = [
            "--accounts-per-link", str(args.accounts_per_link),
            "--movements-per-account", str(args.movements_per_account),
            "--history-days", str(args.history_days),
            "--latency", str(args.latency),
        ]  # fmt: skip
        started = time.monotonic()
        print("generating the sandbox organization …", flush=True)
        sandbox = SandboxProcess(args.links, token_file, shape)
        tokens = [t.strip() for t in token_file.read_text().splitlines() if t.strip()]
        clock = sandbox.http.get("/_sandbox/truth", params={"movements": 0}).json()["clock"]
        since = (date.fromisoformat(clock[:10]) - timedelta(days=args.history_days - 1)).isoformat()
        expected = sandbox.movements()
        print(
            f"sandbox up in {time.monotonic() - started:.0f} s: {expected:,} movements "
            f"from {since}",
            flush=True,
        )
        floor = measure_floor(sandbox, tokens, since)
        print(f"floor: {floor[0]:.2f} s, {floor[1]} requests", flush=True)

        systems: list[System] = []
        plan: list[tuple[System, Any]] = []
        if "defaults" in wanted:
            plan.append((System("fintoc-sync, defaults"), {}))
        if "unlimited" in wanted:
            plan.append(
                (
                    System("fintoc-sync, no request limit"),
                    {"FINTOC_SYNC_REQUESTS_PER_SECOND": UNLIMITED},
                )
            )
        if dlt_python is not None:
            plan.append((System("dlt 1.31"), None))
        systems = [s for s, _ in plan]
        last_fintoc_db = None
        for rep in range(args.repetitions):
            order = plan[rep % len(plan) :] + plan[: rep % len(plan)]  # rotate: no fixed first
            for system, env in order:
                run_dir = work / f"rep{rep}-system{systems.index(system)}"
                run_dir.mkdir()
                db_url = scratch_database(server, "bench_cmp")
                if env is None:
                    assert dlt_python is not None
                    trial = run_dlt(dlt_python, sandbox, db_url, token_file, since, run_dir)
                else:
                    trial = run_fintoc(sandbox, db_url, token_file, since, run_dir, env)
                    last_fintoc_db = db_url
                system.trials.append(trial)
                status = f"FAILED {trial.failed}" if trial.failed else "ok"
                print(
                    f"  rep {rep + 1} {system.name:<32} cold {trial.cold_s:6.2f} s  "
                    f"no-change {trial.nochange_s:5.2f} s  {trial.movements:,} movements  "
                    f"{status}",
                    flush=True,
                )
        ceiling = None
        if last_fintoc_db is not None:
            ceiling = (
                statistics.median([measure_ceiling(last_fintoc_db)[0] for _ in range(3)]),
                _count(last_fintoc_db, "fintoc.movements"),
            )
        sandbox_rss = sandbox.stop()
        print_report(systems, expected, floor, ceiling, args)
        print(f"\n(sandbox process peak RSS {sandbox_rss:.0f} MB; not counted above)")
        print(json.dumps({s.name: [t.__dict__ for t in s.trials] for s in systems}))


if __name__ == "__main__":
    main()
