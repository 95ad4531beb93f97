"""One session per request, managed by a pure ASGI middleware.

For every HTTP request the middleware opens a session and puts it in the
request state, where ``SessionDep`` finds it. It ends the transaction in its
``send`` wrapper, when ``http.response.start`` passes, so the outcome is
settled before the client sees a status:

- status < 400: commit, then let the response through. If the commit fails,
  the client gets the error response of ``errors.py`` (409 / 500 / 503) instead,
  and the application's own response is dropped.
- status >= 400, or the application raised: roll back.
- Afterwards the session is closed and its connection goes back to the pool.

This is a pure ASGI middleware rather than a subclass of Starlette's base HTTP
middleware, which runs the endpoint in a separate task and only sees the
response once it has started.
"""

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import database_error_response


class SessionMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        sessionmaker: async_sessionmaker[AsyncSession] = scope["app"].state.sessionmaker
        async with sessionmaker() as session:
            scope.setdefault("state", {})["db_session"] = session
            replaced = False  # a failed commit replaced the application's response

            async def send_after_commit(message: Message) -> None:
                nonlocal replaced
                if replaced:
                    return
                if message["type"] == "http.response.start":
                    if message["status"] >= 400:
                        await session.rollback()
                    else:
                        try:
                            await session.commit()
                        except Exception as error:
                            await session.rollback()
                            replaced = True
                            await database_error_response(error)(scope, receive, send)
                            return
                await send(message)

            try:
                await self.app(scope, receive, send_after_commit)
            except Exception:
                await session.rollback()
                raise


def get_session(request: Request) -> AsyncSession:
    session: AsyncSession = request.state.db_session
    return session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
"""The request's session: ``async def endpoint(session: SessionDep)``."""
