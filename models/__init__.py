"""SQLAlchemy models of the `fintoc` schema. Alembic (migrations/) owns the DDL."""

from models.account import Account, MovementCursor
from models.base import SCHEMA, Base
from models.history import BalanceSnapshot, LinkStatusTransition
from models.institution import Institution
from models.link import Link, LinkToken
from models.movement import BackfillChunk, Movement, MovementChange
from models.sync_lock import SyncLock
from models.sync_run import SyncRun
from models.webhook_event import WebhookEvent

__all__ = [
    "SCHEMA",
    "Account",
    "BackfillChunk",
    "BalanceSnapshot",
    "Base",
    "Institution",
    "Link",
    "LinkStatusTransition",
    "LinkToken",
    "Movement",
    "MovementChange",
    "MovementCursor",
    "SyncLock",
    "SyncRun",
    "WebhookEvent",
]
