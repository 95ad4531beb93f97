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
rollback and close run in threads; ``SessionDep`` takes the session's
connection before the endpoint runs. Both happen in threads of their own
(``db/threads.py``), not in the threadpool of the plain ``def`` endpoints:
waiting for a connection there could deadlock it under load.
This is a pure ASGI middleware rather than a subclass of Starlette's base HTTP
middleware, which runs the endpoint in a separate task and only sees the
response once it has started.
"""

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import database_error_response
from .threads import SessionThreads


class SessionMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        factory: sessionmaker[Session] = scope["app"].state.sessionmaker
        threads: SessionThreads = scope["app"].state.session_threads
        session = factory()  # no connection yet: SessionDep takes one
        scope.setdefault("state", {})["db_session"] = session
        replaced = False  # a failed commit replaced the application's response

        async def send_after_commit(message: Message) -> None:
            nonlocal replaced
            if replaced:
                return
            if message["type"] == "http.response.start":
                if message["status"] >= 400:
                    await threads.finish(session.rollback)
                else:
                    try:
                        await threads.finish(session.commit)
                    except Exception as error:
                        await threads.finish(session.rollback)
                        replaced = True
                        await database_error_response(error)(scope, receive, send)
                        return
            await send(message)

        try:
            await self.app(scope, receive, send_after_commit)
        except Exception:
            await threads.finish(session.rollback)
            raise
        finally:
            await threads.finish(session.close)


async def get_session(request: Request) -> Session:
    session: Session = request.state.db_session
    threads: SessionThreads = request.app.state.session_threads
    await threads.take_connection(session)
    return session


SessionDep = Annotated[Session, Depends(get_session)]
"""The request's session: ``def endpoint(session: SessionDep)``."""
