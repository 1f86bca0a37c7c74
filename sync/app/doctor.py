"""`fintoc-sync doctor`: is this installation able to sync? One line per check, exit 0 or 2.

Checks, in the order a fix needs them: the database answers, its schema is current, the
vault key decrypts the stored tokens, the API answers, the local clock agrees with the
API's ``Date`` header, and the API accepts the secret key (one ``GET /v1/links`` page of
one link). A check that cannot run because an earlier one failed says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TextIO

import httpx
from sqlalchemy import Engine, text

from sync.api.client import RetryPolicy
from sync.app.style import mark, wants_colour
from sync.app.wiring import Wiring
from sync.errors import AuthenticationError, FintocSyncError, RetriableError
from sync.redact import scrub
from sync.store import vault
from sync.store.db import make_sessionmaker

#: a local clock further than this from the API's is reported (token-free Date header)
CLOCK_TOLERANCE_SECONDS = 60.0
QUICK = RetryPolicy(max_attempts=2, base=0.2, cap=1.0, retry_after_cap=2.0)


@dataclass
class Check:
    """One line of the report."""

    name: str
    ok: bool
    detail: str


def _first_line(exc: BaseException) -> str:
    raw = str(getattr(exc, "orig", None) or exc).strip()
    return scrub(raw.splitlines()[0] if raw else type(exc).__name__)[:300]


def check_database(make_engine: Callable[[], Engine]) -> tuple[list[Check], Engine | None]:
    """Reachable, then migrated to this version's head."""
    from sync.store.migrate import current_revision, head_revision

    try:
        engine = make_engine()
        with engine.connect() as conn:
            version = conn.scalar(text("SHOW server_version"))
    except Exception as exc:  # any failure to connect is this check's finding
        return [Check("database", False, _first_line(exc))], None
    checks = [Check("database", True, f"reachable (PostgreSQL {version})")]
    current, head = current_revision(engine), head_revision()
    if current == head:
        checks.append(Check("schema", True, f"migrated (revision {head})"))
    else:
        found = current or "no fintoc schema"
        fix = f"{found}, expected {head}: run `fintoc-sync migrate`"
        checks.append(Check("schema", False, fix))
        return checks, None
    return checks, engine


def check_vault(engine: Engine | None, key: str | None) -> Check:
    """The encryption key decrypts every stored token (or no key is needed yet)."""
    if engine is None:
        return Check("vault key", False, "not checked: the database is not ready")
    with make_sessionmaker(engine)() as session:
        if key is None:
            n = session.scalar(text("SELECT count(*) FROM fintoc.link_tokens")) or 0
            if n:
                return Check("vault key", False, f"FINTOC_SYNC_ENCRYPTION_KEY unset; {n} stored")
            return Check("vault key", True, "unset, and no tokens are stored yet")
        try:
            cipher = vault.make_cipher(key)
        except FintocSyncError as exc:
            return Check("vault key", False, str(exc))
        stored_n, bad = vault.count_undecryptable(session, cipher)
    name = f"key {vault.key_fingerprint(key)}"
    if bad:
        return Check("vault key", False, f"{name} cannot decrypt {bad} of {stored_n} stored tokens")
    return Check("vault key", True, f"{name} decrypts all {stored_n} stored token(s)")


def check_api_and_clock(
    api_url: str, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> list[Check]:
    """The API answers at all (no key sent), and its Date header agrees with our clock."""
    try:
        response = httpx.get(api_url.rstrip("/") + "/v1/links", timeout=10.0)
    except httpx.HTTPError as exc:
        reason = scrub(f"{type(exc).__name__}: {exc}")[:200]
        return [
            Check("api", False, f"{api_url} does not answer ({reason})"),
            Check("clock", False, "not checked: the API did not answer"),
        ]
    checks = [Check("api", True, f"{api_url} answers (HTTP {response.status_code} without a key)")]
    header = response.headers.get("date")
    try:
        theirs = parsedate_to_datetime(header) if header else None
    except (TypeError, ValueError):
        theirs = None
    if theirs is None:
        checks.append(Check("clock", False, "the API sent no usable Date header"))
        return checks
    skew = (now() - theirs).total_seconds()
    within = abs(skew) <= CLOCK_TOLERANCE_SECONDS
    checks.append(Check("clock", within, f"{skew:+.0f} s from the API's clock"))
    return checks


def check_secret_key(wiring: Wiring) -> Check:
    """One cheap authenticated call: the first page (one link) of GET /v1/links."""
    try:
        with wiring.client(retry=QUICK) as client:
            client.per_page = 1
            next(iter(client.iter_links()), None)
    except AuthenticationError as exc:
        return Check("secret key", False, f"rejected by the API: {scrub(str(exc))}")
    except RetriableError as exc:
        return Check("secret key", False, f"not checked: {scrub(str(exc))}")
    except FintocSyncError as exc:  # a ConfigError: unset, or an http:// URL refused
        return Check("secret key", False, scrub(str(exc)))
    mode = "live" if (wiring.settings.secret_key or "").startswith("sk_live_") else "test"
    return Check("secret key", True, f"accepted ({mode} mode)")


def run_doctor(wiring: Wiring, make_engine: Callable[[], Engine], out: TextIO) -> int:
    """Print every check; exit 0 when all pass, 2 (configuration) otherwise."""
    checks, engine = check_database(make_engine)
    checks.append(check_vault(engine, wiring.settings.encryption_key))
    checks += check_api_and_clock(wiring.settings.api_url)
    checks.append(check_secret_key(wiring))
    colour = wants_colour(out)
    for check in checks:
        print(f"{mark(check.ok, colour)}  {check.name:<11} {check.detail}", file=out)
    if engine is not None:
        engine.dispose()
    return 0 if all(c.ok for c in checks) else 2
