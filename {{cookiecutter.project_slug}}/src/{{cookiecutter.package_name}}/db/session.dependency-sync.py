"""One session per request, managed by a FastAPI ``yield`` dependency.

The dependency is declared with ``scope="function"``: its exit runs as soon as
the endpoint returns, before FastAPI sends the response. (The default
``scope="request"`` would commit only after the client already has its 2xx.)

- The endpoint returned: commit. If the commit fails, the error propagates to
  the exception handlers in ``errors.py`` (409 / 500 / 503), never a 2xx.
- The endpoint raised (an ``HTTPException`` included): roll back, re-raise.
- Either way the session is closed and its connection goes back to the pool.

The endpoints are plain ``def`` and run in FastAPI's threadpool. The session
takes its connection before the endpoint runs, and finishes, in threads of its
own (``db/threads.py``): waiting for a connection in the threadpool could
deadlock it under load.

Fail a request by raising: a ``Response`` with an error status that an endpoint
returns itself is not visible to a dependency and would be committed.
"""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from .threads import SessionThreads


async def get_session(request: Request) -> AsyncIterator[Session]:
    factory: sessionmaker[Session] = request.app.state.sessionmaker
    threads: SessionThreads = request.app.state.session_threads
    session = factory()
    try:
        await threads.take_connection(session)
        yield session
    except Exception:
        await threads.finish(session.rollback)
        raise
    else:
        await threads.finish(session.commit)
    finally:
        await threads.finish(session.close)


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
"""The request's session: ``def endpoint(session: SessionDep)``."""
