"""Column types that store what the API means, exactly, on SQLite.

SQLite keeps no time zone and has no exact decimal. Declared with these, as
the README's "Add a resource" does, a model reads the same on every database
the template offers (migrations store what they are here: ``render_item`` in
``migrations/env.py``):

- ``IdKey``: a 64-bit primary key the database hands out (``INTEGER PRIMARY
  KEY``, the rowid); ``BigId``: another table's id.
- ``UTCDateTime`` (every ``Mapped[datetime]``, ``db/base.py``): written in UTC,
  read back timezone-aware; a naive datetime, which names no moment, is refused.
- ``ExactDecimal(precision, scale)``: stored as an integer count of its last
  digit (``12.50`` with scale 2 is ``1250``): exact, sortable and summable.
"""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from sqlalchemy import BigInteger, DateTime, Dialect, Integer
from sqlalchemy.orm import mapped_column
from sqlalchemy.types import TypeDecorator

# SQLite's INTEGER holds 64 bits; only an INTEGER PRIMARY KEY is the table's rowid.
BigId = Integer
IdKey = Annotated[int, mapped_column(primary_key=True)]
# The largest id an INTEGER holds: a larger id names no row.
MAX_ID = 2**63 - 1


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"{value!r} has no time zone: it names no moment")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class ExactDecimal(TypeDecorator[Decimal]):
    impl = BigInteger
    cache_ok = True

    def __init__(self, precision: int, scale: int) -> None:
        super().__init__()
        self.precision = precision
        self.scale = scale

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        units = value.scaleb(self.scale)
        if units != units.to_integral_value() or len(units.as_tuple().digits) > self.precision:
            raise ValueError(f"{value} does not fit {self.precision} digits, {self.scale} decimal")
        return int(units)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value).scaleb(-self.scale)
