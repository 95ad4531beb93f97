"""Column types that store what the API means, exactly, on PostgreSQL.

Declare such columns with these types, as ``notes/models.py`` in the
README's "Add a resource" does, so that a model reads the same on every
database the template offers:

- ``UTCDateTime``: a moment in time (``timestamptz``), read back in UTC
  whatever the connection's ``TimeZone``; a naive datetime is refused, as it
  names no moment.
- ``ExactDecimal(precision, scale)``: ``NUMERIC(precision, scale)``, exact.

Migrations store them as what they are on this database (``DateTime``,
``Numeric``): see ``render_item`` in ``migrations/env.py``.
"""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, Dialect, Numeric
from sqlalchemy.types import TypeDecorator

# The largest id an ``int`` primary key holds here (a 32-bit integer): a larger id names no row.
MAX_ID = 2**31 - 1


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError(f"{value!r} has no time zone: it names no moment")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else value.astimezone(UTC)


class ExactDecimal(TypeDecorator[Decimal]):
    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int, scale: int) -> None:
        super().__init__(precision, scale)
