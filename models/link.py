"""Links: one bank login of one holder (Fintoc Link object)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, SeenMixin, tstz


class Link(SeenMixin, Base):
    """The latest known state of a link; history lives in link_status_transitions."""

    __tablename__ = "links"
    __table_args__ = (
        Index(None, "institution_id"),
        Index(None, "status"),
        {"comment": "Fintoc links (one bank login of one holder), latest known state"},
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True, comment="Fintoc link id (never parsed)")
    institution_id: Mapped[str | None] = mapped_column(
        Text,
        ForeignKey("institutions.id"),
        comment="The institution the link logs into",
    )
    holder_id: Mapped[str | None] = mapped_column(Text, comment="Tax id of the holder (RUT/RFC)")
    holder_type: Mapped[str | None] = mapped_column(Text, comment="individual or business")
    username: Mapped[str | None] = mapped_column(Text, comment="Bank login name (a RUT in Chile)")
    mode: Mapped[str | None] = mapped_column(Text, comment="test or live")
    active: Mapped[bool | None] = mapped_column(
        Boolean, comment="False when Fintoc stopped refreshing the link; null if the API omits it"
    )
    status: Mapped[str | None] = mapped_column(
        Text, comment="active, login_required, inactive (free text: new values pass through)"
    )
    refresh_status: Mapped[str | None] = mapped_column(
        Text, comment="Fintoc refresh status, free text"
    )
    created_at: Mapped[datetime | None] = mapped_column(
        tstz(), comment="When the link was created at Fintoc"
    )
    last_time_refreshed: Mapped[datetime | None] = mapped_column(
        tstz(), comment="Last time Fintoc refreshed the link's accounts"
    )
    deleted_at: Mapped[datetime | None] = mapped_column(
        tstz(), comment="Set when the link disappeared from the API's list; cleared if it returns"
    )
    last_synced_at: Mapped[datetime | None] = mapped_column(
        tstz(), comment="When fintoc-sync last fetched this link's accounts successfully"
    )
    last_sync_error: Mapped[str | None] = mapped_column(
        Text, comment="The last per-link sync error (redacted), null after a success"
    )


class LinkToken(Base):
    """A registered link token, encrypted at rest; analysts cannot read this table."""

    __tablename__ = "link_tokens"
    __table_args__ = {
        "comment": "Link tokens, Fernet-encrypted; not granted to the analyst role",
    }

    fingerprint: Mapped[str] = mapped_column(
        Text, primary_key=True, comment="SHA-256 of the token: finds duplicates without decrypting"
    )
    token_encrypted: Mapped[bytes] = mapped_column(comment="Fernet ciphertext of the link token")
    link_id: Mapped[str | None] = mapped_column(
        Text,
        ForeignKey("links.id"),
        unique=True,
        comment="The link this token opens, known after the first successful fetch",
    )
    added_at: Mapped[datetime] = mapped_column(
        tstz(), nullable=False, comment="When it was registered"
    )
    last_used_at: Mapped[datetime | None] = mapped_column(
        tstz(), comment="Last time a sync used it successfully"
    )
    invalid_since: Mapped[datetime | None] = mapped_column(
        tstz(), comment="Set when the API answered that the token is unknown or revoked"
    )
