"""Make docs/img/report.png: the report of a month of the demo's sandbox, as Chromium draws it.

    .venv/bin/python scripts/report_screenshot.py [--days 30] [--out docs/img/report.png]

Like `fintoc-sync demo`, but syncing once a sandbox-day for --days days so the charts
have a history: an embedded Postgres in a temporary directory, the sandbox (seed 42),
migrate, sync, `fintoc-sync report`, then headless Chromium takes a screenshot, which is
cropped to the top of the page and reduced to 256 colours (the README's image stays
small). Needs chromium on PATH (Debian: apt-get install chromium).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from _bench_db import scratch_database, server_url  # scripts/ is on sys.path
from cryptography.fernet import Fernet
from PIL import Image

from sync.api.client import FintocClient
from sync.app.report import write_report
from sync.run.movements import MovementSync
from sync.run.pipeline import Pipeline
from sync.sandbox import Sandbox
from sync.store import vault
from sync.store.db import make_engine, make_sessionmaker
from sync.store.migrate import upgrade

WIDTH, HEIGHT, CROP = 1100, 4000, 2050


def sync_month(url: str, days: int) -> None:
    """The sandbox synced once a sandbox-day, observed on the sandbox clock (as the demo)."""
    engine = make_engine(url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    cipher = vault.make_cipher(Fernet.generate_key().decode())
    with Sandbox(seed=42) as sb, FintocClient(sb.url, sb.secret_key) as client:

        def clock() -> datetime:
            return sb.world.now

        with sessions.begin() as session:
            vault.add_tokens(session, cipher, sb.link_tokens(), clock())
        hook = MovementSync(client, full_read_every=timedelta(0), clock=clock)
        pipeline = Pipeline(
            client=client, sessions=sessions, cipher=cipher, clock=clock, account_hook=hook
        )
        for day in range(days + 1):
            if day:
                sb.advance(days=1)
            print(f"sandbox day {day}: {pipeline.run(kind='sync').status}", flush=True)
    engine.dispose()


def screenshot(page: Path, png: Path, profile: Path) -> None:
    """Chromium's screenshot of the page (offline flags, as the browser test uses)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium is not on PATH (apt-get install chromium)")
    subprocess.run(  # noqa: S603 - our own argument list, chromium found on PATH
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--screenshot={png}",
            f"--window-size={WIDTH},{HEIGHT}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


def main() -> None:
    """Sync, report, screenshot, crop and shrink."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("docs/img/report.png"))
    parser.add_argument("--database-url", help="a server where a scratch database may be made")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="report-shot-") as tmp:
        base = Path(tmp)
        url = scratch_database(server_url(base / "pg", args.database_url), "report_shot")
        sync_month(url, args.days)
        engine = make_engine(url)
        summary = write_report(engine, base / "report.html")
        engine.dispose()
        shot = base / "shot.png"
        screenshot(summary.path, shot, base / "profile")
        with Image.open(shot) as image:
            small = image.convert("RGB").crop((0, 0, WIDTH, CROP)).quantize(colors=256)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        small.save(args.out, optimize=True)
    print(f"{args.out}: {args.out.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
