"""``links exchange`` and ``refresh``: tokens captured at the source, data asked for now."""

from __future__ import annotations

import sys
from collections import Counter
from typing import TextIO

from sqlalchemy import Engine

from sync.app.daemon import parse_every
from sync.app.wiring import Wiring
from sync.errors import AuthenticationError, FintocSyncError
from sync.run.context import describe, utc_now
from sync.run.refresh import register_exchanged, request_refreshes
from sync.store import vault
from sync.store.db import make_sessionmaker, wait_sync_lock


def links_exchange(engine: Engine, wiring: Wiring, exchange_tokens: list[str], out: TextIO) -> int:
    """Exchange each token for its link token (stored encrypted), then sync those links."""
    cipher = vault.make_cipher(wiring.settings.require_encryption_key())
    wiring.register_secrets(exchange_tokens)
    sessions = make_sessionmaker(engine)
    failed = 0
    with wiring.client() as client:
        link_ids = []
        for raw in exchange_tokens:
            try:
                payload = client.exchange_link(raw.strip())
                link_ids.append(
                    register_exchanged(
                        sessions, cipher, payload, utc_now(), wiring.register_secrets
                    )
                )
            except AuthenticationError:
                raise
            except FintocSyncError as exc:
                failed += 1
                print(f"  exchange failed: {describe(exc)[1]}", file=out)
        print(f"registered {len(link_ids)} link token(s) by exchange; {failed} failed", file=out)
        worst = 0
        for link_id in link_ids:
            pipeline = wiring.pipeline(engine, client)
            with wait_sync_lock(engine):
                report = pipeline.run(kind="exchange", link_id=link_id)
            print(f"  link {link_id}: {report.status}", file=out)
            worst = max(worst, report.exit_code)
    return max(worst, 1 if failed else 0)


def refresh(
    engine: Engine, wiring: Wiring, link_id: str | None, stale_after: str, out: TextIO
) -> int:
    """Ask for on-demand refreshes of stale links; 0 all normal outcomes, 1 failures, 2 key."""
    threshold = parse_every(stale_after)
    cipher = vault.make_cipher(wiring.settings.require_encryption_key())
    with wiring.client() as client:
        report = request_refreshes(
            make_sessionmaker(engine),
            cipher,
            client,
            threshold,
            link_id=link_id,
            register_secrets=wiring.register_secrets,
        )
    if report.fatal is not None:
        print(f"fintoc-sync: the API rejected FINTOC_SECRET_KEY: {report.fatal}", file=sys.stderr)
        return 2
    tally = Counter(report.outcomes.values())
    summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(tally.items())) or "none stale"
    print(f"refresh of links older than {stale_after}: {summary}", file=out)
    for lid, outcome in sorted(report.outcomes.items()):
        detail = f": {report.errors[lid]}" if lid in report.errors else ""
        print(f"  {lid}: {outcome}{detail}", file=out)
    return report.exit_code
