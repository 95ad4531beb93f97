"""The declarative base every model derives from."""

from datetime import datetime
from typing import Any

from sqlalchemy import MetaData, event
from sqlalchemy.orm import DeclarativeBase, Mapper

from .types import UTCDateTime

# Named constraints keep Alembic migrations stable and readable.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # A moment in time is stored as one, in UTC, on every database (db/types.py).
    type_annotation_map = {datetime: UTCDateTime()}  # noqa: RUF012 (SQLAlchemy's declarative form)


@event.listens_for(Base, "mapper_configured", propagate=True)
def _fetch_what_the_database_writes(mapper: Mapper[Any], _class: type) -> None:
    """A column the database fills (``server_default``, ``onupdate=func.now()``) comes back
    with the INSERT or UPDATE that wrote it (RETURNING), every model's: expired, it would
    be loaded when the answer is serialized, after the unit of work (a MissingGreenlet)."""
    mapper.eager_defaults = True
