"""Column types that store what the API means, exactly, on SQLite.

SQLite keeps no time zone and has no exact decimal type (``NUMERIC`` becomes
a floating-point ``REAL``, and SQLAlchemy warns so). Declare such columns
with these types, as ``notes/models.py`` in the README's "Add a resource" does:

- ``IdKey`` and ``BigId``: ids are 64-bit. ``id: Mapped[IdKey]`` is a primary
  key the database hands out (``INTEGER PRIMARY KEY``, SQLite's 64-bit rowid);
  a column that holds another table's id is ``mapped_column(BigId, ...)``.
- ``UTCDateTime``: a moment in time. Written in UTC, read back timezone-aware
  (UTC); a naive datetime is refused, as it names no moment.
- ``ExactDecimal(precision, scale)``: a decimal with ``scale`` digits after
  the point, stored as an integer count of its last digit (``12.50`` with
  scale 2 is ``1250``): exact, sortable and summable in SQL.

Migrations store them as what they are on this database (``BigInteger``,
``DateTime``): see ``render_item`` in ``migrations/env.py``.
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
