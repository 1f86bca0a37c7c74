"""Financial institutions, as embedded in links."""

from __future__ import annotations

from sqlalchemy import Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, SeenMixin


class Institution(SeenMixin, Base):
    """A bank or other institution a link logs into."""

    __tablename__ = "institutions"
    __table_args__ = {"comment": "Financial institutions seen in links (Fintoc institution object)"}

    id: Mapped[str] = mapped_column(
        Text, primary_key=True, comment="Fintoc id, e.g. cl_banco_de_chile"
    )
    name: Mapped[str | None] = mapped_column(Text, comment="Display name")
    country: Mapped[str | None] = mapped_column(
        Text, comment="Lower-case ISO country code, e.g. cl"
    )
