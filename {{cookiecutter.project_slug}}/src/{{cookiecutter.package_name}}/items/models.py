"""The ``items`` table, and the log of what happened to items."""

from datetime import datetime

from sqlalchemy import DateTime, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from ..db.base import Base
from ..db.types import BigId, IdKey

NAME_MAX_LENGTH = 100


class Item(Base):
    __tablename__ = "items"
    # On SQLite too, the id of a deleted item is never handed out again.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[IdKey]
    name: Mapped[str] = mapped_column(String(NAME_MAX_LENGTH), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    # Counts the item's changes; every UPDATE checks it was not changed meanwhile.
    version: Mapped[int] = mapped_column()

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 (SQLAlchemy's declarative form)


class ItemEvent(Base):
    """One change to an item, written in the change's transaction: both are stored, or
    neither. ``item_id`` is no foreign key: the log outlives the items it tells of."""

    __tablename__ = "item_events"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[IdKey]
    item_id: Mapped[int] = mapped_column(BigId, index=True)
    action: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
