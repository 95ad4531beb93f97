"""One session per request, managed by a FastAPI ``yield`` dependency.

The dependency is declared with ``scope="function"``: its exit runs as soon as
the endpoint returns, before FastAPI sends the response. (The default
``scope="request"`` would commit only after the client already has its 2xx.)

- The endpoint returned: commit. If the commit fails, the error propagates to
  the exception handlers in ``errors.py`` (409 / 500 / 503), never a 2xx.
- The endpoint raised (an ``HTTPException`` included): roll back, re-raise.
- Either way the session is closed and its connection goes back to the pool.

Fail a request by raising: a ``Response`` with an error status that an endpoint
returns itself is not visible to a dependency and would be committed.
"""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session:
        try:
            yield session
        except Exception:
            await session.rollback()
            raise
        await session.commit()


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
"""The request's session: ``async def endpoint(session: SessionDep)``."""
