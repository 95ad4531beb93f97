{% set Session = "AsyncSession" if cookiecutter.driver == "async" else "Session" %}
"""One unit of work per request, managed by a FastAPI ``yield`` dependency.

The session dependencies are declared with ``scope="function"``: their exit
runs as soon as the endpoint returns, before FastAPI builds the response. (The
default ``scope="request"`` would commit only after the client already has its
2xx.) How the unit of work begins and ends is ``db/unit.py``'s business:

- the endpoint returned: commit. A failed commit raises instead, so the client
  gets the error response of ``errors.py`` (409 / 500 / 503) and no background
  task runs: the endpoint's response is never built.
- the endpoint raised (an ``HTTPException`` included): roll back, re-raise.
- the session is closed either way. A background task or a streaming body that
  still uses it gets an error; such work opens a session of its own with
  ``Database.open_session()``.

Fail a request by raising: a response with an error status that an endpoint
returns itself is invisible to a dependency, and what it wrote is committed.

An endpoint takes ``SessionDep`` (``GET``, ``HEAD`` and ``OPTIONS`` only read),
or says otherwise: ``WriteSessionDep`` (a ``GET`` that records a visit),
``ReadSessionDep`` (a ``POST`` that searches).
"""

from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import Depends, Request
{% if cookiecutter.driver == "async" %}
from sqlalchemy.ext.asyncio import AsyncSession
{% else %}
from sqlalchemy.orm import Session
{% endif %}

from .db.unit import Database
from .http import route_of

# Requests that change nothing: read-only units of work (db/unit.py).
READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


DatabaseDep = Annotated[Database, Depends(get_database)]
"""The running service's database, for work outside the request's session."""


def _session(writes: bool | None) -> Callable[[Request], AsyncIterator[{{ Session }}]]:
    """The dependency of a request's session that writes, or not (``None``: as the method says)."""

    async def get_session(request: Request) -> AsyncIterator[{{ Session }}]:
        # The database is looked up here, not declared as a sub-dependency: FastAPI
        # then solves one dependency per request instead of two.
        database = await get_database(request)
        unit_writes = request.method not in READ_ONLY_METHODS if writes is None else writes
        name = f"{request.method} {route_of(request.scope)}"
        async with database.open_session(writes=unit_writes, name=name) as session:
            yield session

    return get_session


SessionDep = Annotated[{{ Session }}, Depends(_session(None), scope="function")]
"""The request's session: ``{{ cookiecutter.__async }}def endpoint(session: SessionDep)``."""
WriteSessionDep = Annotated[{{ Session }}, Depends(_session(True), scope="function")]
"""The request's session, for an endpoint that writes whatever its method."""
ReadSessionDep = Annotated[{{ Session }}, Depends(_session(False), scope="function")]
"""The request's session, for an endpoint that only reads whatever its method."""
