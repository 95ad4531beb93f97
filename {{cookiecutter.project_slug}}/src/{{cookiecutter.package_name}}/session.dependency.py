{% set Session = "AsyncSession" if cookiecutter.driver == "async" else "Session" %}
"""One unit of work per request, managed by a FastAPI ``yield`` dependency.

Declared with ``scope="function"``, its exit runs as the endpoint returns, before the
response is built (the default would commit after the client has its 2xx):

- the endpoint returned: commit; a failed commit raises instead, so the client gets
  ``errors.py``'s answer and no background task runs.
- the endpoint raised (an ``HTTPException`` included): roll back. Fail a request by
  raising: an error response an endpoint returns is invisible to a dependency.
- either way the session is closed: a background task or a streaming body that needs
  the database opens its own with ``Database.open_session()``.

An endpoint takes ``SessionDep`` (``GET``, ``HEAD`` and ``OPTIONS`` only read), or says
otherwise: ``WriteSessionDep`` (a ``GET`` that records a visit), ``ReadSessionDep`` (a
``POST`` that searches).
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
        # Looked up, not a sub-dependency: FastAPI solves one dependency instead of two.
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
