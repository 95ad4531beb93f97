"""The ``items`` table, and the log of what happened to items."""

from datetime import datetime

from sqlalchemy import String, Text, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

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
    # What happened to it, oldest first. Loaded where an answer needs it (the repository's
    # selectinload); lazy="raise" refuses a query of it anywhere else.
    events: Mapped[list["ItemEvent"]] = relationship(
        primaryjoin="Item.id == foreign(ItemEvent.item_id)",
        order_by="ItemEvent.id",
        lazy="raise",
        viewonly=True,
    )

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 (SQLAlchemy's declarative form)


class ItemEvent(Base):
    """One change to an item, written in the change's transaction: both are stored, or
    neither. ``item_id`` is no foreign key: the log outlives the items it tells of."""

    __tablename__ = "item_events"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[IdKey]
    item_id: Mapped[int] = mapped_column(BigId, index=True)
    action: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(server_default=func.now())  # in UTC (db/base.py)
