"""The `fintoc-sync` command line: parse, wire, report, exit code. Thin on purpose.

Exit codes: 0 everything synced, 1 some link failed (the rest is committed),
2 usage or configuration error (one line on stderr says why).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

import httpx
from sqlalchemy import Engine

from sync import __version__
from sync.app.logs import setup_logging
from sync.app.wiring import Wiring
from sync.config import Settings
from sync.errors import AuthenticationError, ConfigError, FintocSyncError

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


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree (each command has --help)."""
    parser = argparse.ArgumentParser(
        prog="fintoc-sync",
        description="Keep a Postgres database in step with a Fintoc organization.",
    )
    parser.add_argument("--version", action="version", version=f"fintoc-sync {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--database-url", help="overrides DATABASE_URL")
    common.add_argument("--api-url", help="overrides FINTOC_API_URL")
    common.add_argument("--log-level", default="INFO", choices=LEVELS)
    common.add_argument("--log-format", default="text", choices=["text", "json"])
    common.add_argument(
        "--insecure",
        action="store_true",
        default=None,
        help="allow a plain http:// API URL to a non-loopback host (not recommended)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    sub.add_parser("migrate", parents=[common], help="apply the database migrations")

    links = sub.add_parser("links", parents=[common], help="manage link tokens")
    links_sub = links.add_subparsers(dest="links_command", metavar="ACTION", required=True)
    add = links_sub.add_parser("add", parents=[common], help="register link tokens (encrypted)")
    add.add_argument("tokens", nargs="*", metavar="TOKEN")
    add.add_argument("--from-file", type=Path, help="read tokens from a file, one per line")
    links_sub.add_parser("list", parents=[common], help="links with status, accounts, last sync")
    exchange = links_sub.add_parser(
        "exchange",
        parents=[common],
        help="exchange widget exchange tokens for link tokens (stored encrypted), then sync",
    )
    exchange.add_argument("exchange_tokens", nargs="+", metavar="EXCHANGE_TOKEN")
    rotate = links_sub.add_parser(
        "rotate-key",
        parents=[common],
        help="re-encrypt every token under FINTOC_SYNC_NEW_ENCRYPTION_KEY",
    )
    rotate.add_argument(
        "--new-key-env",
        default="FINTOC_SYNC_NEW_ENCRYPTION_KEY",
        help="environment variable that holds the new key",
    )

    sync_p = sub.add_parser("sync", parents=[common], help="run one full sync cycle now")
    sync_p.add_argument("--link", metavar="ID", help="sync only this link")
    sync_p.add_argument("--concurrency", type=_positive_int, help="links fetched at once")

    refresh = sub.add_parser(
        "refresh", parents=[common], help="ask Fintoc for on-demand refreshes of stale links"
    )
    refresh.add_argument("--link", metavar="ID", help="only this link")
    refresh.add_argument(
        "--stale-after", default="6h", help="refresh links whose data is older (default 6h)"
    )

    daemon = sub.add_parser("daemon", parents=[common], help="run sync on a schedule")
    when = daemon.add_mutually_exclusive_group()
    when.add_argument("--every", default=None, help="interval like 15m, 1h, 30s (default 15m)")
    when.add_argument("--cron", default=None, help='crontab expression, e.g. "*/15 * * * *"')
    daemon.add_argument("--metrics-port", type=int, help="serve /metrics and /healthz here")
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

    backfill = sub.add_parser("backfill", parents=[common], help="load movement history")
    backfill.add_argument("--since", required=True, help="first post date, YYYY-MM-DD")
    backfill.add_argument("--until", help="end post date (exclusive), YYYY-MM-DD; default today")
    backfill.add_argument("--link", metavar="ID", help="only this link")
    backfill.add_argument("--account", metavar="ID", help="only this account")
    backfill.add_argument("--chunk-days", type=_positive_int, default=31, help="days per chunk")

    sandbox = sub.add_parser("sandbox", help="serve the local Fintoc-compatible API")
    sandbox.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (0 = any free)")
    sandbox.add_argument("--seed", type=int, default=42, help="seed of the deterministic data")
    sandbox.add_argument("--links", type=_positive_int, help="generate this many links")
    sandbox.add_argument(
        "--real-time",
        action="store_true",
        help="catch the sandbox clock up to now and follow real time "
        "(default: a fixed clock starting 2026-11-01, moved by POST /_sandbox/advance)",
    )

    sandbox.add_argument("--webhook-url", help="deliver signed webhook events to this URL")
    sandbox.add_argument("--webhook-secret", help="the signing secret for --webhook-url")

    demo = sub.add_parser("demo", help="try it: embedded Postgres + sandbox + sync")
    demo.add_argument("--database-url", help="use this database instead of the embedded one")
    demo.add_argument("--log-level", default="WARNING", choices=LEVELS)
    demo.add_argument("--log-format", default="text", choices=["text", "json"])
    return parser


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
        return commands.links_add(engine, wiring, raw, out)
    if args.links_command == "list":
        return commands.links_list(engine, out)
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
    commands.print_report(report, out)
    if report.fatal is not None:  # the one-line reason that exit code 2 promises
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
    from sync.sandbox import serve_forever

    if args.webhook_url and not args.webhook_secret:
        raise ConfigError("--webhook-url needs --webhook-secret (the endpoint's signing secret)")
    serve_forever(
        port=args.port,
        seed=args.seed,
        n_links=args.links,
        out=out,
        real_time=args.real_time,
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
    )
    return 0


def cmd_demo(args: argparse.Namespace, wiring: Wiring, out: TextIO) -> int:
    """Embedded Postgres + sandbox + migrate + sync, then a summary."""
    from sync.app.demo import run_demo

    return run_demo(wiring, out, database_url=args.database_url)


COMMANDS: dict[str, Handler] = {
    "migrate": cmd_migrate,
    "links": cmd_links,
    "sync": cmd_sync,
    "refresh": cmd_refresh,
    "daemon": cmd_daemon,
    "backfill": cmd_backfill,
    "sandbox": cmd_sandbox,
    "demo": cmd_demo,
}


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Entry point of `fintoc-sync` and `python -m sync`."""
    out = out or sys.stdout
    # platformdirs (via the embedded Postgres) warns when XDG_RUNTIME_DIR is unset: harmless.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    redactor = setup_logging(
        args.log_level if hasattr(args, "log_level") else "INFO",
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
    except _database_errors() as exc:
        from sync.redact import scrub

        print(f"fintoc-sync: database error: {scrub(_first_line(exc))}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:  # pragma: no cover - the client translates these
        print(f"fintoc-sync: HTTP error: {type(exc).__name__}", file=sys.stderr)
        return 1


def _database_errors() -> tuple[type[BaseException], ...]:
    from sqlalchemy.exc import SQLAlchemyError

    return (SQLAlchemyError,)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
