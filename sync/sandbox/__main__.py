"""``python -m sync.sandbox --port N --seed S [--links N]``."""

from __future__ import annotations

import argparse
import sys

from sync.sandbox.app import serve_forever


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
    args = parser.parse_args(argv)
    if args.webhook_url and not args.webhook_secret:
        parser.error("--webhook-url needs --webhook-secret")
    serve_forever(
        args.port,
        args.seed,
        args.links,
        sys.stdout,
        host=args.host,
        real_time=args.real_time,
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
    )


if __name__ == "__main__":
    main()
