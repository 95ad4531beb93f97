"""One session per request, managed by a FastAPI ``yield`` dependency.

The dependency is declared with ``scope="function"``: its exit runs as soon as
the endpoint returns, before FastAPI sends the response. (The default
``scope="request"`` would commit only after the client already has its 2xx.)
FastAPI runs this generator in its threadpool, so the blocking session calls
never stall the event loop.

- The endpoint returned: commit. If the commit fails, the error propagates to
  the exception handlers in ``errors.py`` (409 / 500 / 503), never a 2xx.
- The endpoint raised (an ``HTTPException`` included): roll back, re-raise.
- Either way the session is closed and its connection goes back to the pool.

Fail a request by raising: a ``Response`` with an error status that an endpoint
returns itself is not visible to a dependency and would be committed.
"""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker


def get_session(request: Request) -> Iterator[Session]:
    factory: sessionmaker[Session] = request.app.state.sessionmaker
    with factory() as session:
        try:
            yield session
        except Exception:
            session.rollback()
            raise
        session.commit()


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
"""The request's session: ``def endpoint(session: SessionDep)``."""
