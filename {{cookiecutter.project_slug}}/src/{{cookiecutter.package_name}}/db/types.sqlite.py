"""Column types that store what the API means, exactly, on SQLite.

SQLite keeps no time zone and has no exact decimal type (``NUMERIC`` becomes
a floating-point ``REAL``, and SQLAlchemy warns so). Declare such columns
with these types, as ``notes/models.py`` in the README's "Add a resource" does:

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
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect
from sqlalchemy.types import TypeDecorator

# The largest id an ``int`` primary key holds here (a 64-bit INTEGER): a larger id names no row.
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
