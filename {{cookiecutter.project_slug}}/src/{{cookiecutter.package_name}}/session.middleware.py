{% set Session = "AsyncSession" if cookiecutter.driver == "async" else "Session" %}
"""One session per request, managed by a pure ASGI middleware.

The middleware gives every HTTP request a place for a session, which
``SessionDep`` opens the first time an endpoint asks for it (a request that
never asks costs no connection). It ends the session in its ``send`` wrapper
when ``http.response.start`` passes, so the outcome is settled before the
client sees a status. How the session begins and ends is
``db/transaction.py``'s business:

- status < 400: commit. If the commit fails, the client gets the error
  response of ``errors.py`` (409 / 500 / 503) instead, and the rest of the
  application's response — its body and its background tasks — is dropped.
- status >= 400, or the application raised before responding: roll back.
- the session is closed once the response starts. A streaming body or a
  background task that still uses it gets an error; such work opens a session
  of its own with ``Database.open_session()``.

This is a pure ASGI middleware rather than a subclass of Starlette's base HTTP
middleware, which runs the endpoint in a separate task and only sees the
response once it has started.
"""

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.exc import SQLAlchemyError
{% if cookiecutter.driver == "async" %}
from sqlalchemy.ext.asyncio import AsyncSession
{% else %}
from sqlalchemy.orm import Session
{% endif %}
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .db.transaction import Database
from .errors import database_error_response

# Requests that change nothing: read-only units of work (db/units.py).
READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class RequestSession:
    """The session of one request: opened on first use, ended once."""

    def __init__(self, database: Database, *, writes: bool) -> None:
        self.database = database
        self.writes = writes
        self.session: {{ Session }} | None = None
        self.ended = False

    async def open(self) -> {{ Session }}:
        if self.ended:
            raise RuntimeError(
                "The request's session has ended with its response; "
                "open a session of its own with Database.open_session()."
            )
        if self.session is None:
            self.session = await self.database.begin(writes=self.writes)
        return self.session

    async def end(self, *, commit: bool) -> None:
        if self.ended:
            return
        self.ended = True
        if self.session is not None:
            await self.database.end(self.session, commit=commit)


class _ResponseReplacedError(Exception):
    """Stops the application's response after an error response went out instead."""


class SessionMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        writes = scope["method"] not in READ_ONLY_METHODS
        request_session = RequestSession(scope["app"].state.database, writes=writes)
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


async def get_session(request: Request) -> {{ Session }}:
    request_session: RequestSession = request.state.db
    return await request_session.open()


SessionDep = Annotated[{{ Session }}, Depends(get_session)]
"""The request's session: ``{{ cookiecutter.__async }}def endpoint(session: SessionDep)``."""
