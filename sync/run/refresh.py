"""On-demand refreshes (``fintoc-sync refresh``) and exchanges (``links exchange``).

Refresh: for each link with a registered token whose data is older than the threshold
(``last_time_refreshed``, else ``last_synced_at``; never refreshed counts as stale), ask
Fintoc for a refresh intent. The API's own refusals that describe the link's situation
are outcomes, not failures (fintoc-api.md §2.3): one already in progress, the cooldown
after a recent refresh, the organization's plan lacking on-demand refresh, credentials
rejected (the holder must reconnect). Requests go through the client's rate budget.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from cryptography.fernet import Fernet
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from models import Link, LinkToken
from sync.api import schemas
from sync.errors import ApiError, AuthenticationError, FintocSyncError, PayloadError
from sync.run.context import Clock, describe, utc_now
from sync.store import vault

log = logging.getLogger(__name__)

#: error code → the outcome it means (not a failure)
OUTCOME_CODES = {
    "refresh_intent_in_progress": "in_progress",
    "rate_limit_exceeded": "cooling_down",
    "on_demand_policy_required": "unavailable",
    "on_demand_refresh_unavailable": "unavailable",
    "rejected_refresh_intent": "rejected",
}


class RefreshSource(Protocol):
    """What a refresh needs from the API client."""

    def create_refresh_intent(
        self, link_token: str, refresh_type: str | None = None
    ) -> dict[str, Any]: ...


@dataclass
class RefreshReport:
    """Outcome per link: requested / in_progress / cooling_down / unavailable / rejected /
    failed."""

    outcomes: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    fatal: AuthenticationError | None = None

    @property
    def exit_code(self) -> int:
        """0 every link got a normal outcome, 1 some failed, 2 the key was rejected."""
        if self.fatal is not None:
            return 2
        return 1 if self.errors else 0


def stale_links(
    session: Session, now: datetime, stale_after: timedelta, link_id: str | None = None
) -> list[str]:
    """Ids of links with a usable token whose data is older than ``now - stale_after``."""
    seen = func.coalesce(Link.last_time_refreshed, Link.last_synced_at)
    query = (
        select(Link.id)
        .join(LinkToken, LinkToken.link_id == Link.id)
        .where(
            Link.deleted_at.is_(None),
            LinkToken.invalid_since.is_(None),
            or_(seen.is_(None), seen < now - stale_after),
        )
        .order_by(seen.nulls_first(), Link.id)
    )
    if link_id is not None:
        query = query.where(Link.id == link_id)
    return list(session.scalars(query))


def request_refreshes(
    sessions: sessionmaker[Session],
    cipher: Fernet,
    client: RefreshSource,
    stale_after: timedelta,
    *,
    link_id: str | None = None,
    clock: Clock = utc_now,
    register_secrets: Callable[[Iterable[str]], None] = lambda secrets: None,
) -> RefreshReport:
    """POST a refresh intent for every stale link; never raises for one link's error."""
    report = RefreshReport()
    with sessions() as session:
        ids = stale_links(session, clock(), stale_after, link_id)
        tokens = {i: vault.token_for_link(session, cipher, i) for i in ids}
    register_secrets([t for t in tokens.values() if t])
    for lid, token in tokens.items():
        if token is None:
            continue
        try:
            intent = client.create_refresh_intent(token)
        except AuthenticationError as exc:
            report.fatal = exc
            return report
        except ApiError as exc:
            outcome = OUTCOME_CODES.get(exc.code or "")
            if outcome is None:
                report.outcomes[lid] = "failed"
                report.errors[lid] = describe(exc)[1]
            else:
                report.outcomes[lid] = outcome
            continue
        except FintocSyncError as exc:
            report.outcomes[lid] = "failed"
            report.errors[lid] = describe(exc)[1]
            continue
        report.outcomes[lid] = "requested"
        log.info("link %s: refresh intent %s", lid, str(intent.get("id", "?"))[:60])
    return report


def register_exchanged(
    sessions: sessionmaker[Session],
    cipher: Fernet,
    payload: object,
    now: datetime,
    register_secrets: Callable[[Iterable[str]], None] = lambda secrets: None,
) -> str:
    """Store the link_token of a ``GET /v1/links/exchange`` answer (encrypted); its link id."""
    if not isinstance(payload, dict):
        raise PayloadError("GET /v1/links/exchange: expected a link object", field="<body>")
    token = payload.get("link_token")
    if not isinstance(token, str) or not token or len(token) > 1000:
        raise PayloadError(
            "GET /v1/links/exchange: the answer has no link_token", field="link_token"
        )
    register_secrets([token])
    link = schemas.parse_link({k: v for k, v in payload.items() if k != "link_token"})
    with sessions.begin() as session:
        vault.add_tokens(session, cipher, [token], now)
    return link.id
