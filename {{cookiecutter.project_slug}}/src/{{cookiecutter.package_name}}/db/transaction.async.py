"""The transaction policy: how every unit of database work begins and ends.

A unit of work is one HTTP request, one background task, one script. It gets
one session, and ends in one of two ways:

- it succeeded: commit. A commit that fails is rolled back and its error
  raised, for the caller to report (``errors.py`` turns it into 409/500/503).
- it failed, or a request's response is an error: roll back.

Either way the session is then closed for good — using it again raises an
error instead of quietly checking out another connection — and its
connection goes back to the pool. Ending is shielded from cancellation: a
client that goes away mid-request cannot leave a connection checked out.

Sessions queue for connections first come, first served: at most as many
sessions exist at once as the pool has connections, and a session that waited
``DB_POOL_TIMEOUT`` seconds in all gets SQLAlchemy's pool ``TimeoutError``
(a 503). The pool's gauges (``db/metrics.py``) follow every step.

``session.py`` decides *when* a request's unit of work ends; this module
decides *how*. Work outside a request uses ``Database.open_session()``.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anyio import CancelScope
from anyio.lowlevel import checkpoint_if_cancelled
from sqlalchemy import select
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from ..settings import Settings
from .engine import build_engine, read_only_options
from .metrics import POOL_WAITING, observe_pool
from .units import UnitSession, finish


class Database:
    """The engine of a running service and the one way to open and end its sessions."""

    def __init__(self, settings: Settings) -> None:
        self.engine = build_engine(settings)
        self.sessionmaker = async_sessionmaker(
            self.engine,
            sync_session_class=UnitSession,
            expire_on_commit=False,
            close_resets_only=False,
        )
        self._places = asyncio.Semaphore(settings.db_pool_size + settings.db_max_overflow)
        self._timeout = settings.db_pool_timeout
        # The execution options of a unit of work that writes, or not (units.py).
        self._options = {True: {"writes": True}, False: read_only_options(settings)}
        observe_pool(self.engine.pool)

    def join(self, connection: AsyncConnection) -> None:
        """Run every session inside ``connection``'s transaction, each in a SAVEPOINT of
        its own, so that a commit only releases it (tests roll the transaction back).
        A joined session cannot choose its isolation level: read-only ones join too."""
        self.sessionmaker.configure(bind=connection, join_transaction_mode="create_savepoint")
        self._options[False] = {"writes": False}

    @asynccontextmanager
    async def open_session(self, *, writes: bool = True) -> AsyncIterator[AsyncSession]:
        """A session of its own, for work outside a request: committed when the block
        succeeds, rolled back when it raises.

        ``async with database.open_session() as session: ...``
        """
        session = await self.begin(writes=writes)
        try:
            yield session
        except BaseException:
            await self.end(session, commit=False)
            raise
        await self.end(session, commit=True)

    async def begin(self, *, writes: bool = True) -> AsyncSession:
        """A new session that holds a connection, once one is free.

        ``writes=False`` promises a read-only unit of work (``units.py``).
        """
        POOL_WAITING.inc()
        try:
            async with asyncio.timeout(self._timeout):
                await self._places.acquire()
        except TimeoutError:
            message = f"No database connection was free within {self._timeout:g} s."
            raise PoolTimeoutError(message) from None
        finally:
            POOL_WAITING.dec()
        session = self.sessionmaker(info={"writes": writes})
        try:
            await session.connection(execution_options=self._options[writes])
        except BaseException:
            with CancelScope(shield=True):
                await self._finish(session, commit=False)
            raise
        observe_pool(self.engine.pool)
        return session

    async def end(self, session: AsyncSession, *, commit: bool) -> None:
        """Commit (or roll back), then close. A failed commit is rolled back and raised,
        and so is the cancellation of a unit of work that was cancelled before its commit."""
        if commit:
            try:
                await checkpoint_if_cancelled()
            except BaseException:
                await self.end(session, commit=False)
                raise
        with CancelScope(shield=True):
            await self._finish(session, commit=commit)

    async def ping(self) -> None:
        """Raise unless the database answers a query."""
        async with self.open_session(writes=False) as session:
            await session.execute(select(1))

    async def dispose(self) -> None:
        """Close every pooled connection; the service is stopping."""
        await self.engine.dispose()

    async def _finish(self, session: AsyncSession, *, commit: bool) -> None:
        try:
            await session.run_sync(finish, commit)
        finally:
            self._places.release()
            observe_pool(self.engine.pool)
