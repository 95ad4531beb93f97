{% set Session = "AsyncSession" if cookiecutter.driver == "async" else "Session" %}
"""One unit of work per request, managed by a pure ASGI middleware.

The request's session opens when an endpoint first asks for one (a request that never
asks costs no connection); the middleware ends it as ``http.response.start`` passes,
before the client sees a status (Starlette's base HTTP middleware would see the
response only once it had started):

- status < 400: commit; a failed commit's answer (``errors.py``) replaces the
  application's, and its body and background tasks are dropped.
- status >= 400, or the application raised before responding: roll back.
- the session is closed as the response starts: a streaming body or a background task
  that needs the database opens its own with ``Database.open_session()``.

An endpoint takes ``SessionDep`` (``GET``, ``HEAD`` and ``OPTIONS`` only read), or says
otherwise: ``WriteSessionDep`` (a ``GET`` that records a visit), ``ReadSessionDep`` (a
``POST`` that searches).
"""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.exc import SQLAlchemyError
{% if cookiecutter.driver == "async" %}
from sqlalchemy.ext.asyncio import AsyncSession
{% else %}
from sqlalchemy.orm import Session
{% endif %}
from starlette.types import Message, Receive, Scope, Send

from .db.unit import Database
from .errors import database_error_response
from .http import ASGIMiddleware, route_of

# Requests that change nothing: read-only units of work (db/unit.py).
READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class RequestSession:
    """The session of one request: opened on first use, ended once."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.session: {{ Session }} | None = None
        self.ended = False

    async def open(self, request: Request, *, writes: bool | None) -> {{ Session }}:
        """The request's session, begun now if it is the first use (``writes=None``: as
        the method says)."""
        if self.ended:
            raise RuntimeError(
                "The request's session has ended with its response; "
                "open a session of its own with Database.open_session()."
            )
        if self.session is None:
            if writes is None:
                writes = request.method not in READ_ONLY_METHODS
            name = f"{request.method} {route_of(request.scope)}"
            self.session = await self.database.begin(writes=writes, name=name)
        return self.session

    async def end(self, *, commit: bool) -> None:
        if self.ended:
            return
        self.ended = True
        if self.session is not None:
            await self.database.end(self.session, commit=commit)


class _ResponseReplacedError(Exception):
    """Stops the application's response after an error response went out instead."""


class SessionMiddleware(ASGIMiddleware):
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_session = RequestSession(scope["app"].state.database)
        scope.setdefault("state", {})["db"] = request_session

        async def send_after_commit(message: Message) -> None:
            if message["type"] == "http.response.start":
                try:
                    await request_session.end(commit=message["status"] < 400)
                except SQLAlchemyError as error:
                    await database_error_response(error)(scope, receive, send)
                    raise _ResponseReplacedError from error
            await send(message)

        try:
            await self.app(scope, receive, send_after_commit)
        except _ResponseReplacedError:
            pass
        finally:
            await request_session.end(commit=False)


async def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


DatabaseDep = Annotated[Database, Depends(get_database)]
"""The running service's database, for work outside the request's session."""


def _session(writes: bool | None) -> Callable[[Request], Awaitable[{{ Session }}]]:
    """The dependency of a request's session that writes, or not (``None``: as the method says)."""

    async def get_session(request: Request) -> {{ Session }}:
        request_session: RequestSession = request.state.db
        return await request_session.open(request, writes=writes)

    return get_session


SessionDep = Annotated[{{ Session }}, Depends(_session(None))]
"""The request's session: ``{{ cookiecutter.__async }}def endpoint(session: SessionDep)``."""
WriteSessionDep = Annotated[{{ Session }}, Depends(_session(True))]
"""The request's session, for an endpoint that writes whatever its method."""
ReadSessionDep = Annotated[{{ Session }}, Depends(_session(False))]
"""The request's session, for an endpoint that only reads whatever its method."""
