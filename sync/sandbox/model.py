"""The mutable state of the sandbox world: links and accounts (movements are lazy)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime


@dataclass(frozen=True, slots=True)
class Institution:
    """A bank as embedded in links and transfer accounts."""

    id: str
    name: str
    country: str = "cl"


@dataclass(slots=True)
class Balance:
    """Balances in minor units of the account currency."""

    available: int
    current: int
    limit: int


@dataclass(slots=True)
class Account:
    """One bank account of a link; ``rate`` is the mean number of movements per day."""

    id: str
    link_id: str
    name: str
    official_name: str
    number: str | None
    type: str
    currency: str
    holder_id: str
    holder_name: str
    balance: Balance
    refreshed_at: str | None
    history_start: date
    rate: float = 3.0
    volatility: float = 0.35
    refresh_status: str = "idle"
    removed_from_link: bool = False


@dataclass(slots=True)
class Link:
    """One bank login. ``script`` maps a tick number to a forced change."""

    id: str
    token: str
    holder_id: str
    holder_type: str
    username: str
    institution: Institution
    created_at: str
    last_time_refreshed: str | None
    account_ids: list[str]
    refresh_status: str = "idle"
    mode: str = "test"
    active: bool = True
    status: str = "active"
    legacy: bool = False
    deleted_at: datetime | None = None
    frozen_until: datetime | None = None
    flip_rate: float = 0.01
    recover_rate: float = 0.2
    delete_rate: float = 0.0
    script: dict[int, str] = field(default_factory=dict)
