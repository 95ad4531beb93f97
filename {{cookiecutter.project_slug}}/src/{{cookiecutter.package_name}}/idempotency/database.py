{% set Session = "AsyncSession" if cookiecutter.driver == "async" else "Session" %}
"""The unit of work of a write with a key, and the request's own sessions joining it.

``middleware.py`` begins a keyed write's unit of work before the application
runs, to claim the key, and ends it once the answer is stored with the write.
Meanwhile every unit of work the request begins — its session, whichever
strategy gives it (``session.py``), and any ``open_session()`` of its
endpoint — joins that one instead of beginning its own: ``begin()`` answers
it, ``end()`` only leaves it, and a rollback there makes the keyed unit's
commit a rollback too. So all a keyed request writes is stored with its
answer, or none of it is. Background tasks run once the unit has ended, in
units of their own.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

{% if cookiecutter.driver == "async" %}
from sqlalchemy.ext.asyncio import AsyncSession
{% else %}
from sqlalchemy.orm import Session
{% endif %}

from ..db.unit import Database


class KeyedUnit:
    """The unit of work of one keyed write: its session while it runs, and whether a
    session that joined it rolled back."""

    def __init__(self, session: {{ Session }}) -> None:
        self.session: {{ Session }} | None = session
        self.joined = 0
        self.rolled_back = False


_KEYED: ContextVar[KeyedUnit | None] = ContextVar("_KEYED", default=None)


@contextmanager
def joined_by_the_request(unit: KeyedUnit) -> Iterator[None]:
    """Within the block, the units of work this request begins join ``unit``."""
    token = _KEYED.set(unit)
    try:
        yield
    finally:
        _KEYED.reset(token)


class KeyedDatabase(Database):
    """A ``Database`` whose units of work join a keyed write's, during its request."""

    async def begin(self, **options: Any) -> {{ Session }}:
        unit = _KEYED.get()
        if unit is None or unit.session is None:
            return await super().begin(**options)
        unit.joined += 1
        return unit.session

    async def end(self, session: {{ Session }}, *, commit: bool) -> None:
        unit = _KEYED.get()
        if unit is not None and session is unit.session and unit.joined:
            unit.joined -= 1
            unit.rolled_back = unit.rolled_back or not commit
            return
        await super().end(session, commit=commit)

    async def end_keyed(self, unit: KeyedUnit, *, commit: bool) -> None:
        """End the keyed unit itself (a rollback in a session that joined it wins)."""
        session, unit.session = unit.session, None
        if session is not None:
            await super().end(session, commit=commit and not unit.rolled_back)
