"""``python -m sync.sandbox --port N --seed S [--links N [--accounts-per-link A …]]``."""

from __future__ import annotations

import argparse
import sys

from sync.sandbox.app import serve_forever
from sync.sandbox.generate import Shape


def _seconds(raw: str) -> float:
    """``0.05``, ``50ms`` or ``1s`` → seconds."""
    text = raw.strip().lower()
    try:
        scale, number = (1000, text[:-2]) if text.endswith("ms") else (1, text.removesuffix("s"))
        value = float(number) / scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {raw!r} (say 50ms or 0.05)") from None
    if value < 0:
        raise argparse.ArgumentTypeError("a latency cannot be negative")
    return value


def main(argv: list[str] | None = None) -> None:
    """Parse the flags and serve until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m sync.sandbox",
        description="Serve the local Fintoc-compatible sandbox API. Prints its URL, the "
        "accepted secret key and the link tokens, one per line.",
    )
    parser.add_argument("--port", type=int, default=8787, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--links", type=int, default=None, help="generate N links")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--real-time",
        action="store_true",
        help="start at the current time and follow it (default: a fixed clock, 2026-11-01)",
    )
    parser.add_argument("--webhook-url", help="deliver signed webhook events here")
    parser.add_argument("--webhook-secret", help="the signing secret of --webhook-url")
    sized = parser.add_argument_group(
        "benchmark organization",
        "with any of these, --links N generates N active links of exactly this shape "
        "(no curated links), generated up front and served from memory",
    )
    sized.add_argument("--accounts-per-link", type=int, metavar="A")
    sized.add_argument("--movements-per-account", type=int, metavar="M", help="mean per account")
    sized.add_argument("--history-days", type=int, metavar="D", help="days of post_date history")
    parser.add_argument(
        "--latency",
        type=_seconds,
        default=0.0,
        help="wait this long before answering each /v1 request (e.g. 50ms)",
    )
    args = parser.parse_args(argv)
    if args.webhook_url and not args.webhook_secret:
        parser.error("--webhook-url needs --webhook-secret")
    shape = None
    sizes = (args.accounts_per_link, args.movements_per_account, args.history_days)
    if any(v is not None for v in sizes):
        if args.links is None:
            parser.error("--accounts-per-link/--movements-per-account/--history-days need --links")
        if any(v is not None and v < 1 for v in sizes):
            parser.error("organization sizes must be at least 1")
        default = Shape()
        shape = Shape(
            accounts_per_link=args.accounts_per_link or default.accounts_per_link,
            movements_per_account=args.movements_per_account or default.movements_per_account,
            history_days=args.history_days or default.history_days,
        )
    serve_forever(
        args.port,
        args.seed,
        args.links,
        sys.stdout,
        host=args.host,
        real_time=args.real_time,
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
        shape=shape,
        latency=args.latency,
    )


if __name__ == "__main__":
    main()
