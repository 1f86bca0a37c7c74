"""The `fintoc-sync` command line: parse, wire, report, exit code. Thin on purpose.

Exit codes: 0 everything synced, 1 some link failed (the rest is committed),
2 usage or configuration error (one line on stderr says why).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import Engine

from sync import __version__
from sync.app.logs import setup_logging
from sync.app.wiring import Wiring
from sync.config import Settings
from sync.errors import AuthenticationError, ConfigError, FintocSyncError
from sync.store.vault import key_fingerprint as vault_key_fingerprint

log = logging.getLogger("sync.app.cli")

LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]
Handler = Callable[[argparse.Namespace, Wiring, TextIO], int]


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {raw!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {raw!r}")
    return value


TOP_EPILOG = """\
environment:
  DATABASE_URL                 postgresql://… (unset: an embedded Postgres in FINTOC_SYNC_DATA_DIR)
  FINTOC_SECRET_KEY            sk_test_… / sk_live_… (not needed by demo, sandbox, migrate, links)
  FINTOC_API_URL               default https://api.fintoc.com (the sandbox prints its own)
  FINTOC_SYNC_ENCRYPTION_KEY   Fernet key that encrypts link tokens at rest
  NO_COLOR                     set it to turn colour off (colour is only used on a terminal)
  (tuning knobs: README, "Configuration")

exit codes:
  0  ok    1  something failed (the rest is committed)    2  usage or configuration

examples:
  fintoc-sync demo
  fintoc-sync --log-level DEBUG sync --link link_nMNejK7BT8oGbvO4
  fintoc-sync COMMAND --help
"""

EXAMPLES = {
    "migrate": "  fintoc-sync migrate\n"
    "  DATABASE_URL=postgresql://me@db/fintoc fintoc-sync migrate",
    "links": "  fintoc-sync links add --from-file tokens.txt --verify\n"
    "  fintoc-sync links list --json\n  fintoc-sync links remove link_nMNejK7BT8oGbvO4",
    "links add": "  fintoc-sync links add link_XXX_token_YYY\n"
    "  fintoc-sync links add --from-file tokens.txt --verify\n"
    "  fintoc-sync links add --from-file - < tokens.txt\n\n"
    "Refused (nothing stored): API keys (sk_/pk_), whitespace, fewer than 8 or more than 512\n"
    "characters, and an encryption key that cannot decrypt the tokens already stored.\n"
    "An unfamiliar shape is registered with a warning (Fintoc asks clients not to parse tokens).",
    "links list": "  fintoc-sync links list\n"
    "  fintoc-sync links list --json | jq '.[] | select(.status != \"active\")'",
    "links remove": "  fintoc-sync links remove link_nMNejK7BT8oGbvO4\n"
    "  fintoc-sync links remove 3f9a1c0b7e2d   # a token ref, as `status` and failures show it\n\n"
    "Only the encrypted token is forgotten: the link's synced data stays.",
    "links rotate-key": "  FINTOC_SYNC_NEW_ENCRYPTION_KEY=… fintoc-sync links rotate-key",
    "sync": "  fintoc-sync sync\n  fintoc-sync sync --link link_nMNejK7BT8oGbvO4\n"
    "  fintoc-sync sync --json   # the summary as one JSON object",
    "daemon": "  fintoc-sync daemon --every 15m --metrics-port 9108\n"
    '  fintoc-sync daemon --cron "*/15 * * * *" --log-format json',
    "backfill": "  fintoc-sync backfill --since 2024-01-01\n"
    "  fintoc-sync backfill --since 2024-01-01 --until 2025-01-01 --link link_nMNejK7BT8oGbvO4",
    "status": "  fintoc-sync status\n  fintoc-sync status --json",
    "doctor": "  fintoc-sync doctor     # exit 0 when every check passes, else 2",
    "sandbox": "  fintoc-sync sandbox                  # then paste the export lines it prints\n"
    "  fintoc-sync sandbox --port 0 --links 1000 --fixed-clock",
    "demo": "  fintoc-sync demo",
    "report": "  fintoc-sync report --out report.html\n"
    "  fintoc-sync report --out /tmp/fintoc.html --days 365 --max-accounts 20\n\n"
    "One self-contained HTML file (no script, nothing fetched from the network): balance\n"
    "history per account (one chart per currency), each link's status timeline, money in\n"
    "and out per month, and the freshness of every table. Needs no API key.",
}


def _parser(sub: Any, name: str, help_: str, *parents: argparse.ArgumentParser) -> Any:
    """A subcommand with a description and examples in its --help."""
    key = name  # "links add" names the examples; the parser itself is "add"
    return sub.add_parser(
        name.split()[-1],
        parents=list(parents),
        help=help_,
        description=help_[0].upper() + help_[1:] + ".",
        epilog="examples:\n" + EXAMPLES[key] if key in EXAMPLES else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _option_groups() -> tuple[argparse.ArgumentParser, ...]:
    """(database, api, log) options. SUPPRESS: a subcommand that is not given one keeps
    the value given before the command (`fintoc-sync --log-level DEBUG sync`)."""
    quiet = argparse.SUPPRESS
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument("--database-url", default=quiet, help="overrides DATABASE_URL")
    api = argparse.ArgumentParser(add_help=False)
    api.add_argument("--api-url", default=quiet, help="overrides FINTOC_API_URL")
    api.add_argument(
        "--insecure",
        action="store_true",
        default=quiet,
        help="allow a plain http:// API URL to a non-loopback host (not recommended)",
    )
    logs = argparse.ArgumentParser(add_help=False)
    logs.add_argument("--log-level", default=quiet, choices=LEVELS, help="default INFO")
    logs.add_argument("--log-format", default=quiet, choices=["text", "json"])
    return db, api, logs


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree (each command has --help with examples)."""
    db, api, logs = _option_groups()
    parser = argparse.ArgumentParser(
        prog="fintoc-sync",
        description="Keep a Postgres database in step with a Fintoc organization.",
        epilog=TOP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[db, api, logs],
    )
    parser.add_argument("--version", action="version", version=f"fintoc-sync {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    _parser(sub, "migrate", "apply the database migrations", db, logs)

    links = _parser(sub, "links", "manage link tokens", db, logs)
    links_sub = links.add_subparsers(dest="links_command", metavar="ACTION", required=True)
    add = _parser(links_sub, "links add", "register link tokens (encrypted)", db, api, logs)
    add.add_argument("tokens", nargs="*", metavar="TOKEN")
    add.add_argument("--from-file", type=Path, help="read tokens from a file, one per line")
    add.add_argument(
        "--verify",
        action="store_true",
        help="ask the API which link each token opens (needs FINTOC_SECRET_KEY); "
        "tokens it refuses are not registered",
    )
    listing = _parser(links_sub, "links list", "links with status, accounts, last sync", db, logs)
    listing.add_argument("--json", action="store_true", help="one JSON object per link")
    remove = _parser(links_sub, "links remove", "forget registered link tokens", db, logs)
    remove.add_argument(
        "refs", nargs="+", metavar="ID_OR_TOKEN", help="a link id, a token, or a token ref"
    )
    exchange = _parser(
        links_sub,
        "links exchange",
        "exchange widget exchange tokens for link tokens (stored encrypted), then sync",
        db,
        api,
        logs,
    )
    exchange.add_argument("exchange_tokens", nargs="+", metavar="EXCHANGE_TOKEN")
    rotate = _parser(
        links_sub,
        "links rotate-key",
        "re-encrypt every token under FINTOC_SYNC_NEW_ENCRYPTION_KEY",
        db,
        logs,
    )
    rotate.add_argument(
        "--new-key-env",
        default="FINTOC_SYNC_NEW_ENCRYPTION_KEY",
        help="environment variable that holds the new key",
    )

    sync_p = _parser(sub, "sync", "run one full sync cycle now", db, api, logs)
    sync_p.add_argument("--link", metavar="ID", help="sync only this link")
    sync_p.add_argument("--concurrency", type=_positive_int, help="links fetched at once")
    sync_p.add_argument("--json", action="store_true", help="print the summary as JSON")

    refresh = _parser(
        sub, "refresh", "ask Fintoc for on-demand refreshes of stale links", db, api, logs
    )
    refresh.add_argument("--link", metavar="ID", help="only this link")
    refresh.add_argument(
        "--stale-after", default="6h", help="refresh links whose data is older (default 6h)"
    )

    daemon = _parser(sub, "daemon", "run sync on a schedule", db, api, logs)
    when = daemon.add_mutually_exclusive_group()
    when.add_argument("--every", default=None, help="interval like 15m, 1h, 30s (default 15m)")
    when.add_argument("--cron", default=None, help='crontab expression, e.g. "*/15 * * * *"')
    daemon.add_argument(
        "--metrics-port", type=_port0, help="serve /metrics and /healthz here (0 = any free port)"
    )
    daemon.add_argument("--concurrency", type=_positive_int, help="links fetched at once")
    daemon.add_argument(
        "--webhook-port",
        type=int,
        help="also serve POST /webhooks/fintoc here (env FINTOC_SYNC_WEBHOOK_PORT; "
        "needs FINTOC_WEBHOOK_SECRET)",
    )
    daemon.add_argument(
        "--webhook-host", help="address of the webhook receiver (default 127.0.0.1)"
    )

    backfill = _parser(sub, "backfill", "load movement history", db, api, logs)
    backfill.add_argument("--since", required=True, help="first post date, YYYY-MM-DD")
    backfill.add_argument(
        "--until", help="end post date (exclusive), YYYY-MM-DD; default tomorrow (today included)"
    )
    backfill.add_argument("--link", metavar="ID", help="only this link")
    backfill.add_argument("--account", metavar="ID", help="only this account")
    backfill.add_argument(
        "--chunk-days",
        type=_positive_int,
        default=None,
        help="split each account's read into ranges of N days (default: one read per account, "
        "checkpointed every 5,000 movements)",
    )

    status = _parser(
        sub, "status", "last runs, links failing now, data freshness, pending events", db, logs
    )
    status.add_argument("--json", action="store_true", help="print it as one JSON object")
    _parser(sub, "doctor", "check the database, the keys, the API and the clock", db, api, logs)

    sandbox = _parser(sub, "sandbox", "serve the local Fintoc-compatible API", logs)
    sandbox.add_argument("--port", type=_port0, default=8765, help="port on 127.0.0.1 (0 = any)")
    sandbox.add_argument("--seed", type=int, default=42, help="seed of the deterministic data")
    sandbox.add_argument("--links", type=_positive_int, help="generate this many links")
    clock = sandbox.add_mutually_exclusive_group()
    clock.add_argument(
        "--fixed-clock",
        action="store_true",
        help="keep the sandbox clock at 2026-11-01, moved only by POST /_sandbox/advance "
        "(for tests; default: catch up to now and follow the wall clock)",
    )
    clock.add_argument("--real-time", action="store_true", help=argparse.SUPPRESS)  # the default
    sandbox.add_argument("--webhook-url", help="deliver signed webhook events to this URL")
    sandbox.add_argument("--webhook-secret", help="the signing secret for --webhook-url")

    _parser(sub, "demo", "try it: embedded Postgres + sandbox + sync", db, logs)

    report = _parser(sub, "report", "write an HTML report with charts of the data", db, logs)
    report.add_argument(
        "--out", type=Path, default=Path("report.html"), help="where (default ./report.html)"
    )
    report.add_argument(
        "--days", type=_positive_int, default=90, help="history shown, in days (default 90)"
    )
    report.add_argument(
        "--max-accounts",
        type=_positive_int,
        default=8,
        help="accounts charted per currency, the largest balances first (default 8)",
    )
    report.add_argument(
        "--max-links",
        type=_positive_int,
        default=30,
        help="links on the status timeline, those not active first (default 30)",
    )
    return parser


def _port0(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {raw!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {raw}")
    return value


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    return settings.with_overrides(
        database_url=getattr(args, "database_url", None),
        api_url=getattr(args, "api_url", None),
        insecure=getattr(args, "insecure", None),
        concurrency=getattr(args, "concurrency", None),
    )


def _engine(settings: Settings, *, pool_size: int = 5) -> Engine:
    from sync.store.db import make_engine, resolve_database_url

    return make_engine(resolve_database_url(settings), pool_size=pool_size)


def _ready_engine(settings: Settings, *, pool_size: int = 5) -> Engine:
    """An engine on a database whose schema is current (else a clear ConfigError)."""
    from sync.store.migrate import require_current_schema

    engine = _engine(settings, pool_size=pool_size)
    require_current_schema(engine)
    return engine


def _wait_for_database(settings: Settings, *, pool_size: int) -> Engine:
    """_ready_engine, retried while the server is unreachable (a daemon may start first).

    Waits up to FINTOC_SYNC_DB_WAIT seconds; a schema that is behind is not waited for.
    """
    from sqlalchemy.exc import OperationalError

    deadline = time.monotonic() + settings.db_wait
    while True:
        try:
            return _ready_engine(settings, pool_size=pool_size)
        except OperationalError as exc:
            if time.monotonic() >= deadline:
                raise
            log.warning("database not reachable yet (%s); retrying in 2 s", _first_line(exc))
            time.sleep(2)


# ------------------------------------------------------------------------- commands


def cmd_migrate(args: argparse.Namespace, wiring: Wiring, out: TextIO) -> int:
    """Apply every migration up to head."""
    settings = wiring.settings
    from sync.store.migrate import current_revision, upgrade

    engine = _engine(settings)
    before = current_revision(engine)
    upgrade(engine)
    after = current_revision(engine)
    if before == after:
        print(f"schema fintoc is up to date (revision {after})", file=out)
    else:
        print(f"schema fintoc migrated from {before or 'empty'} to {after}", file=out)
    return 0


def cmd_links(args: argparse.Namespace, wiring: Wiring, out: TextIO) -> int:
    """links add | list | rotate-key."""
    settings = wiring.settings
    from sync.app import commands

    engine = _ready_engine(settings)
    if args.links_command == "add":
        raw = list(args.tokens)
        if args.from_file is not None:
            raw += _read_token_file(args.from_file)
        if not raw:
            raise ConfigError("give at least one TOKEN or --from-file FILE")
        return commands.links_add(engine, wiring, raw, out, verify=args.verify)
    if args.links_command == "remove":
        from sync.app.links import links_remove

        return links_remove(engine, args.refs, out)
    if args.links_command == "list":
        return commands.links_list(engine, out, as_json=args.json)
    if args.links_command == "exchange":
        from sync.app.onboarding import links_exchange

        settings.require_secret_key()
        return links_exchange(engine, wiring, list(args.exchange_tokens), out)
    return commands.links_rotate_key(engine, wiring, args.new_key_env, out)


def _read_token_file(path: Path) -> list[str]:
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def cmd_sync(args: argparse.Namespace, wiring: Wiring, out: TextIO) -> int:
    """One cycle now; the exit code tells whether every link synced."""
    settings = wiring.settings
    from sync.app import commands

    settings.require_secret_key()  # configuration first: fail before touching anything
    settings.checked_api_url()
    engine = _ready_engine(settings, pool_size=settings.concurrency + 2)
    report = commands.run_sync_once(engine, wiring, link_id=args.link)
    if args.json:
        commands.print_report_json(report, out)
    else:
        commands.print_report(report, out)
    if isinstance(report.fatal, ConfigError):  # e.g. a vault key that decrypts nothing
        key = settings.encryption_key
        named = f" (key {vault_key_fingerprint(key)})" if key else ""
        print(f"fintoc-sync: {report.fatal}{named}", file=sys.stderr)
    elif report.fatal is not None:  # the one-line reason that exit code 2 promises
        print(f"fintoc-sync: the API rejected FINTOC_SECRET_KEY: {report.fatal}", file=sys.stderr)
    return report.exit_code


def cmd_refresh(args: argparse.Namespace, wiring: Wiring, out: TextIO) -> int:
    """On-demand refresh intents for links older than --stale-after."""
    settings = wiring.settings
    from sync.app.onboarding import refresh

    settings.require_secret_key()
    settings.checked_api_url()
    return refresh(_ready_engine(settings), wiring, args.link, args.stale_after, out)


def cmd_daemon(args: argparse.Namespace, wiring: Wiring, out: TextIO) -> int:
    """Run sync on a schedule until SIGTERM/SIGINT."""
    settings = wiring.settings
    from sync.app.daemon import run_daemon

    settings.require_secret_key()
    settings.checked_api_url()
    webhook_port = args.webhook_port if args.webhook_port is not None else settings.webhook_port
    if webhook_port is not None:  # configuration first: refuse before touching anything
        settings.require_webhook_secret()
        settings.require_encryption_key()
    pool = settings.concurrency + 2 + (2 * settings.webhook_workers + 4 if webhook_port else 0)
    engine = _wait_for_database(settings, pool_size=pool)
    return run_daemon(
        engine,
        wiring,
        every=args.every,
        cron=args.cron,
        metrics_port=args.metrics_port,
        webhook_port=webhook_port,
        webhook_host=args.webhook_host,
    )


def cmd_backfill(args: argparse.Namespace, wiring: Wiring, out: TextIO) -> int:
    """Load movement history for a date range, resumably."""
    settings = wiring.settings
    from sync.app.commands import run_backfill_command

    engine = _ready_engine(settings, pool_size=settings.concurrency + 2)
    return run_backfill_command(engine, wiring, args, out)


def cmd_sandbox(args: argparse.Namespace, wiring: Wiring, out: TextIO) -> int:
    """Serve the sandbox in the foreground."""
    from functools import partial

    from sync.app.sandbox_banner import announce
    from sync.sandbox import serve_forever

    if args.webhook_url and not args.webhook_secret:
        raise ConfigError("--webhook-url needs --webhook-secret (the endpoint's signing secret)")
    real_time = not args.fixed_clock
    serve_forever(
        port=args.port,
        seed=args.seed,
        n_links=args.links,
        out=out,
        real_time=real_time,
        announce=partial(announce, real_time=real_time),
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
    )
    return 0


def cmd_demo(args: argparse.Namespace, wiring: Wiring, out: TextIO) -> int:
    """Embedded Postgres + sandbox + migrate + sync, then a summary."""
    from sync.app.demo import run_demo

    return run_demo(wiring, out, database_url=getattr(args, "database_url", None))


def cmd_report(args: argparse.Namespace, wiring: Wiring, out: TextIO) -> int:
    """Write the HTML report; read-only, needs no API key."""
    from sync.app.report import Options, describe, write_report

    options = Options(days=args.days, max_accounts=args.max_accounts, max_links=args.max_links)
    summary = write_report(_ready_engine(wiring.settings), args.out, options)
    print(describe(summary), file=out)
    return 0


def cmd_status(args: argparse.Namespace, wiring: Wiring, out: TextIO) -> int:
    """Last runs, failing links, freshness; read-only."""
    from sync.app.status import run_status

    return run_status(_ready_engine(wiring.settings), out, as_json=args.json)


def cmd_doctor(args: argparse.Namespace, wiring: Wiring, out: TextIO) -> int:
    """One line per check; 0 all good, 2 something to fix."""
    from sync.app.doctor import run_doctor

    return run_doctor(wiring, lambda: _engine(wiring.settings), out)


COMMANDS: dict[str, Handler] = {
    "status": cmd_status,
    "doctor": cmd_doctor,
    "migrate": cmd_migrate,
    "links": cmd_links,
    "sync": cmd_sync,
    "refresh": cmd_refresh,
    "daemon": cmd_daemon,
    "backfill": cmd_backfill,
    "sandbox": cmd_sandbox,
    "demo": cmd_demo,
    "report": cmd_report,
}


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Parse, wire, run one command; its exit code (tests call it in-process)."""
    out = out or sys.stdout
    # platformdirs (via the embedded Postgres) warns when XDG_RUNTIME_DIR is unset: harmless.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    if args.command is None:  # a bare `fintoc-sync`: teach, and say it was not a command
        parser.print_help(sys.stderr)
        return 2
    quiet_by_default = args.command in {"demo", "status", "doctor", "report"}
    redactor = setup_logging(
        getattr(args, "log_level", None) or ("WARNING" if quiet_by_default else "INFO"),
        getattr(args, "log_format", "text"),
    )
    try:
        wiring = Wiring(_settings(args), redactor)
        return COMMANDS[args.command](args, wiring, out)
    except ConfigError as exc:
        print(f"fintoc-sync: {exc}", file=sys.stderr)
        return 2
    except AuthenticationError as exc:  # the key is configuration: exit 2, as for sync
        from sync.redact import scrub

        print(
            f"fintoc-sync: the API rejected FINTOC_SECRET_KEY: {scrub(str(exc))}", file=sys.stderr
        )
        return 2
    except FintocSyncError as exc:
        from sync.redact import scrub

        print(f"fintoc-sync: {scrub(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fintoc-sync: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `fintoc-sync links list | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except _database_errors() as exc:
        from sqlalchemy.exc import InterfaceError, OperationalError

        from sync.redact import scrub

        if isinstance(exc, OperationalError | InterfaceError):  # cannot connect: config
            print(
                f"fintoc-sync: cannot reach the database: {scrub(_first_line(exc))}",
                file=sys.stderr,
            )
            return 2
        print(f"fintoc-sync: database error: {scrub(_first_line(exc))}", file=sys.stderr)
        return 1
    except _http_errors() as exc:  # pragma: no cover - the client translates these
        print(f"fintoc-sync: HTTP error: {type(exc).__name__}", file=sys.stderr)
        return 1


def _http_errors() -> tuple[type[BaseException], ...]:
    """httpx's errors, if httpx was imported (a command that makes no request never does)."""
    httpx = sys.modules.get("httpx")
    return (httpx.HTTPError,) if httpx is not None else ()


def _database_errors() -> tuple[type[BaseException], ...]:
    from sqlalchemy.exc import SQLAlchemyError

    return (SQLAlchemyError,)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
