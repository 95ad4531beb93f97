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

The middleware runs on the event loop while the session blocks, so commit,
rollback and close run in the threadpool, like the plain ``def`` endpoints.
This is a pure ASGI middleware, not ``BaseHTTPMiddleware``: that one runs the
endpoint in a separate task and only sees the response once it has started.
"""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import database_error_response


class SessionMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        factory: sessionmaker[Session] = scope["app"].state.sessionmaker
        session = factory()  # no connection yet: it is taken on first use
        scope.setdefault("state", {})["db_session"] = session
        replaced = False  # a failed commit replaced the application's response

        async def send_after_commit(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return
            if message["type"] == "http.response.start":
                if message["status"] >= 400:
                    await run_in_threadpool(session.rollback)
                else:
                    try:
                        await run_in_threadpool(session.commit)
                    except Exception as error:
                        await run_in_threadpool(session.rollback)
                        replaced = True
                        await database_error_response(error)(scope, receive, send)
                        return
            await send(message)

        try:
            await self.app(scope, receive, send_after_commit)
        except Exception:
            await run_in_threadpool(session.rollback)
            raise
        finally:
            await run_in_threadpool(session.close)


def get_session(request: Request) -> Session:
    session: Session = request.state.db_session
    return session


SessionDep = Annotated[Session, Depends(get_session)]
"""The request's session: ``def endpoint(session: SessionDep)``."""
