{% set Session = "AsyncSession" if cookiecutter.driver == "async" else "Session" %}
"""One session per request, managed by a FastAPI ``yield`` dependency.

``get_session`` is declared with ``scope="function"``: its exit runs as soon
as the endpoint returns, before FastAPI builds the response. (The default
``scope="request"`` would commit only after the client already has its 2xx.)
How the session begins and ends is ``db/transaction.py``'s business:

- the endpoint returned: commit. A failed commit raises instead, so the client
  gets the error response of ``errors.py`` (409 / 500 / 503) and no background
  task runs: the endpoint's response is never built.
- the endpoint raised (an ``HTTPException`` included): roll back, re-raise.
- the session is closed either way. A background task or a streaming body that
  still uses it gets an error; such work opens a session of its own with
  ``Database.open_session()``.

Fail a request by raising: a response with an error status that an endpoint
returns itself is invisible to a dependency, and what it wrote is committed.
"""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
{% if cookiecutter.driver == "async" %}
from sqlalchemy.ext.asyncio import AsyncSession
{% else %}
from sqlalchemy.orm import Session
{% endif %}

from .db.transaction import Database

# Requests that change nothing: read-only units of work (db/units.py).
READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


DatabaseDep = Annotated[Database, Depends(get_database)]
"""The running service's database, for work outside the request's session."""


async def get_session(request: Request) -> AsyncIterator[{{ Session }}]:
    # The database is looked up here, not declared as a sub-dependency: FastAPI
    # then solves one dependency per request instead of two.
    database = await get_database(request)
    async with database.open_session(writes=request.method not in READ_ONLY_METHODS) as session:
        yield session


SessionDep = Annotated[{{ Session }}, Depends(get_session, scope="function")]
"""The request's session: ``{{ cookiecutter.__async }}def endpoint(session: SessionDep)``."""
