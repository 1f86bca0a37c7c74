"""`fintoc-sync report`: a self-contained page, safe with hostile names, drawn by a browser."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from models import Account, BalanceSnapshot, Institution, Link, LinkStatusTransition, Movement
from sync.app import charts
from sync.app.report import Options, render, write_report
from sync.sandbox import Sandbox
from tests.helpers import run_cli
from tests.synced import sync_daily

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRE_BROWSER = os.environ.get("FINTOC_SYNC_REQUIRE_BROWSER") == "1"
HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(2)>',
    "$\\nosuchcommand{$ costs $5",  # an error if it were parsed as mathtext
    "_starts_with_underscore",
    "--> <!-- ]]> &amp;",
]


class Page(HTMLParser):
    """Every tag and attribute of a page, to check what it could load or run."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, int] = {}
        self.attributes: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.attributes += [(tag, name, value or "") for name, value in attrs]


def parse(page: str) -> Page:
    """The page's tags and attributes."""
    parser = Page()
    parser.feed(page)
    return parser


def assert_self_contained(page: str) -> None:
    """No script, no handler, nothing that loads from anywhere."""
    parsed = parse(page)
    for tag in ("script", "img", "link", "iframe", "object", "embed", "image", "foreignobject"):
        assert tag not in parsed.tags, tag
    for tag, name, value in parsed.attributes:
        assert not name.startswith("on"), (tag, name)
        if name in ("src", "href", "xlink:href", "action"):
            assert value.startswith("#"), (tag, name, value)  # only references inside the page
    assert "@import" not in page
    assert re.findall(r"url\((?!#)", page) == []  # clip paths are url(#id) inside the page


def _hostile_org(sessions: sessionmaker[Session]) -> None:
    """One bank and link with hostile names, twelve CLP accounts, a USD one, history."""
    now = datetime.now(UTC)
    with sessions.begin() as session:
        session.add(Institution(id="cl_evil", name=HOSTILE[0], country="cl"))
        session.add(Link(id=HOSTILE[1], institution_id="cl_evil", status="login_required"))
        session.flush()
        session.add_all(
            [
                LinkStatusTransition(
                    link_id=HOSTILE[1], to_status="active", observed_at=now - timedelta(days=9)
                ),
                LinkStatusTransition(
                    link_id=HOSTILE[1],
                    from_status="active",
                    to_status=HOSTILE[2],
                    observed_at=now - timedelta(days=4),
                ),
                LinkStatusTransition(
                    link_id=HOSTILE[1],
                    from_status=HOSTILE[2],
                    to_status="login_required",
                    observed_at=now - timedelta(days=2),
                ),
            ]
        )
        for n in range(13):
            currency = "USD" if n == 12 else "CLP"
            account_id = f"acc_{n:02d}"
            session.add(
                Account(
                    id=account_id,
                    link_id=HOSTILE[1],
                    name=HOSTILE[n % len(HOSTILE)],
                    currency=currency,
                    balance_current=1000 * (n + 1),
                )
            )
            session.flush()
            for back, amount in ((20, 500 * (n + 1)), (5, 1000 * (n + 1))):
                session.add(
                    BalanceSnapshot(
                        account_id=account_id,
                        observed_at=now - timedelta(days=back),
                        balance_current=amount,
                        balance_available=amount,
                        currency=currency,
                    )
                )
            session.add(
                Movement(
                    id=f"mov_{n}",
                    account_id=account_id,
                    amount=(-1) ** n * 700,
                    currency=currency,
                    description=HOSTILE[2],
                    post_date=now - timedelta(days=3),
                )
            )


def test_report_escapes_hostile_names_and_caps_accounts_per_currency(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    """API strings are escaped text; 12 CLP accounts capped at 5 with a note; no script."""
    _hostile_org(sessions)
    page, summary = render(engine, Options(max_accounts=5))
    assert_self_contained(page)
    for text in HOSTILE:
        if set(text) & set("<>&\"'"):
            assert text not in page, text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in page
    assert "The 5 largest of 12 CLP accounts by current balance" in page
    assert "All 1 USD account(s)." in page
    # the five largest CLP balances (acc_11 … acc_07), in that order, and not acc_06
    legend = re.findall(r"<code>(acc_\d\d)</code>", page)
    assert legend == ["acc_11", "acc_10", "acc_09", "acc_08", "acc_07", "acc_12"]
    # charts: balances CLP + USD, the status timeline, cash flow CLP + USD
    assert summary.charts == 5 and page.count("<svg") == 5
    assert summary.accounts == 6


def test_report_command_on_an_empty_database_and_a_bad_path(db_url: str, tmp_path: Path) -> None:
    """An empty schema gives a page that says so (exit 0); an unwritable --out exits 2."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FINTOC", "DATABASE"))}
    env |= {"DATABASE_URL": db_url, "FINTOC_SYNC_DATA_DIR": str(tmp_path / "unused")}
    out = tmp_path / "empty.html"
    made = run_cli("report", "--out", str(out), env=env)
    assert made.returncode == 0, made.stderr
    assert f"report written to {out}" in made.stdout and "no data yet" in made.stdout
    page = out.read_text()
    assert "No data yet" in page and "<svg" not in page
    assert_self_contained(page)
    bad = run_cli("report", "--out", str(tmp_path / "missing" / "r.html"), env=env)
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith("fintoc-sync: cannot write the report to")
    assert "Traceback" not in bad.stderr
    assert run_cli("report", "--max-links", "0", env=env).returncode == 2


def _colour_pixels(png: Path, colour: str, tolerance: int = 24) -> int:
    """How many pixels of the screenshot are within tolerance of colour (#rrggbb)."""
    from PIL import Image

    target = tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))
    with Image.open(png) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 24) or []
    return sum(
        count
        for count, rgb in colours
        if all(abs(a - b) <= tolerance for a, b in zip(rgb, target, strict=True))
    )


def test_report_of_synced_sandbox_draws_in_headless_chromium(
    engine: Engine,
    sessions: sessionmaker[Session],
    sandbox: Sandbox,
    fernet_key: str,
    tmp_path: Path,
) -> None:
    """Chromium opens the file offline: every chart is an SVG with drawing, the screenshot
    shows the series, status and cash-flow colours, and the console stays silent."""
    if CHROMIUM is None:
        if REQUIRE_BROWSER:
            pytest.fail("FINTOC_SYNC_REQUIRE_BROWSER=1 but no chromium on PATH")
        pytest.skip(
            "chromium is not installed (apt-get install chromium): no browser to open the report"
        )
    assert sync_daily(sandbox, sessions, fernet_key, days=2) == ["succeeded"] * 3
    summary = write_report(engine, tmp_path / "report.html")
    assert summary.charts >= 4  # balances CLP and USD, the timeline, cash flow
    page = summary.path.read_text()
    assert_self_contained(page)
    png = tmp_path / "shot.png"
    browser = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            f"--screenshot={png}",
            "--window-size=1100,3600",
            "--dump-dom",
            summary.path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert browser.returncode == 0, browser.stderr[-2000:]
    console = [line for line in browser.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []
    dom = browser.stdout
    svgs = re.findall(r"<svg\b.*?</svg>", dom, flags=re.S)
    assert len(svgs) == summary.charts
    assert all(svg.count("<path") > 20 for svg in svgs)  # axes, ticks and data, not empty
    # Colours that only the charts draw in bulk (a legend swatch is 100 pixels):
    assert _colour_pixels(png, charts.PALETTE[0]) > 1500  # the first account's balance line
    assert _colour_pixels(png, charts.STATUS_COLOURS["active"]) > 20_000  # timeline + inflow
    assert _colour_pixels(png, charts.STATUS_COLOURS["login_required"]) > 5_000
