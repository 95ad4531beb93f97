{% set is_async = cookiecutter.driver == "async" %}
{% set Session = "AsyncSession" if is_async else "Session" %}
"""The unit of work: how every request, background task and script uses the database.

A unit has a session of its own and ends once, shielded from cancellation: committed if
it succeeded (a commit in the middle is refused; a failed one is rolled back and raised,
for ``errors.py``), else rolled back; then closed for good. **Read-only units**
(``writes=False``: ``GET``, ``HEAD`` and ``OPTIONS`` unless their route says otherwise)
run with ``engine.py``'s ``READ_ONLY_OPTIONS`` and refuse INSERT, UPDATE and DELETE
(``ReadOnlyError``; SQL text is not inspected).

**One wait**: units queue for a place, first come, first served (no more hold sessions
than the pool has connections), then take their connection — a new connection's
setup{{ " and SQLite's write lock" if cookiecutter.database == "sqlite" }} included — within the same ``DB_POOL_TIMEOUT``; past it, a 503.
{% if not is_async %}
Taking the connection and ending block, so they run in anyio threads of their own, one
per connection, never in the ``def`` endpoints' threadpool, which a worker waiting for
a connection could deadlock under load.
{% endif %}
**A first statement that found its connection dead runs again**, once, on a new one; a
later statement or a commit is not (a commit whose answer was lost may have been stored).

``begin()``, ``end()`` and ``after_commit()`` are the extension point: a subclass may
choose where a unit runs, who ends it, and what follows a commit on its connection.
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any{{ ", TypeVar" if cookiecutter.python_version == "3.11" }}

from anyio import CancelScope{{ ", CapacityLimiter, to_thread" if not is_async }}
from anyio.lowlevel import checkpoint_if_cancelled
from sqlalchemy import Connection, event, select
from sqlalchemy.exc import DBAPIError, InvalidRequestError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
{% if is_async %}
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
from sqlalchemy.orm import ORMExecuteState, Session
{% else %}
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker
{% endif %}

from ..settings import Settings
from .engine import DEADLINE, READ_ONLY_OPTIONS, build_engine

logger = logging.getLogger(__name__)

# How many statements a unit's connection has sent (see "A first statement...").
_SENT = "statements_sent"
# Where the work under way (a request: observability.py) counts the statements it sends.
STATEMENTS: ContextVar[list[int] | None] = ContextVar("statements", default=None)
{% if cookiecutter.python_version == "3.11" %}

T = TypeVar("T")
{% endif %}


class ReadOnlyError(InvalidRequestError):
    """A read-only unit of work tried to write."""


class UnitSession(Session):
    """A unit's session: ``info`` holds ``writes`` and ``name`` (``GET /items/{item_id}``)."""


class Database:
    """The engine of a running service and the one way to begin and end its units of work."""

    session_class: type[UnitSession] = UnitSession

    def __init__(self, settings: Settings) -> None:
        self.engine = build_engine(settings)
{% if is_async %}
        self.sessionmaker = async_sessionmaker(
            self.engine,
            sync_session_class=self.session_class,
            expire_on_commit=False,
            close_resets_only=False,
        )
{% else %}
        self.sessionmaker = sessionmaker(
            self.engine, class_=self.session_class, expire_on_commit=False, close_resets_only=False
        )
{% endif %}
        connections = settings.db_pool_size + settings.db_max_overflow
        self._places = asyncio.Semaphore(connections)
{% if not is_async %}
        self._threads = CapacityLimiter(connections)
{% endif %}
        self._timeout = settings.db_pool_timeout
        # The execution options of a unit of work that writes, or not (engine.py).
        self._options = {True: {"writes": True}, False: READ_ONLY_OPTIONS}
        # Units of work in line for a place.
        self.waiting = 0
        event.listen(self.engine{{ ".sync_engine" if is_async }}, "before_cursor_execute", _count_statement)

    def join(self, connection: {{ "AsyncConnection" if is_async else "Connection" }}) -> None:
        """Run every session in a SAVEPOINT of ``connection``'s transaction (tests')."""
        self.sessionmaker.configure(bind=connection, join_transaction_mode="create_savepoint")
        self._options[False] = {"writes": False}

    @asynccontextmanager
    async def open_session(
        self, *, writes: bool = True, name: str = "open_session()", **options: Any
    ) -> AsyncIterator[{{ Session }}]:
        """A unit of work outside a request: committed if the block succeeds, else rolled back
        (``options``: what a subclass's ``begin()`` takes besides)."""
        session = await self.begin(writes=writes, name=name, **options)
        try:
            yield session
        except BaseException:
            await self.end(session, commit=False)
            raise
        await self.end(session, commit=True)

    async def begin(self, *, writes: bool = True, name: str = "A unit of work") -> {{ Session }}:
        """A new session that holds a connection, once one is free (see above)."""
        deadline = time.monotonic() + self._timeout
        if self._places.locked():
            await self._wait_for_place(deadline)
        else:
            await self._places.acquire()  # one is free: taken at once, no timer
        session = self.sessionmaker(info={"writes": writes, "name": name})
        try:
            await self.run(session, _connect, self._options[writes], deadline)
        except BaseException:
            with CancelScope(shield=True):
                await self._finish(session, commit=False)
            raise
        return session

    async def _wait_for_place(self, deadline: float) -> None:
        self.waiting += 1
        try:
            async with asyncio.timeout(deadline - time.monotonic()):
                await self._places.acquire()
        except TimeoutError:
            message = f"No database connection was free within {self._timeout:g} s."
            raise PoolTimeoutError(f"{message} ({self.waiting} units of work in line)") from None
        finally:
            self.waiting -= 1

    async def end(self, session: {{ Session }}, *, commit: bool) -> None:
        """Commit (or roll back), then close; a failed or cancelled commit rolls back, raising."""
        if commit:
            try:
                await checkpoint_if_cancelled()
            except BaseException:
                await self.end(session, commit=False)
                raise
        with CancelScope(shield=True):
            await self._finish(session, commit=commit)

    def after_commit(self, session: Session) -> None:
        """What follows a unit's commit on its connection, before it goes back to the pool."""

    async def run{{ "" if cookiecutter.python_version == "3.11" else "[T]" }}(self, session: {{ Session }}, call: Callable[..., T], *args: Any) -> T:
{% if is_async %}
        """``call(session, *args)`` with the blocking ``Session`` API, in a greenlet."""
        return await session.run_sync(call, *args)
{% else %}
        """``call(session, *args)`` in the session threads: blocking work outside an endpoint."""
        return await to_thread.run_sync(call, session, *args, limiter=self._threads)
{% endif %}

    async def ping(self) -> None:
        async with self.open_session(writes=False, name="ping()") as session:
            await self.run(session, Session.execute, select(1))

    async def dispose(self) -> None:
{% if is_async %}
        await self.engine.dispose()
{% else %}
        await to_thread.run_sync(self.engine.dispose, limiter=self._threads)
{% endif %}

    async def _finish(self, session: {{ Session }}, *, commit: bool) -> None:
        try:
            await self.run(session, self._commit_or_roll_back, commit)
        finally:
            self._places.release()

    def _commit_or_roll_back(self, session: Session, commit: bool) -> None:
        try:
            if not commit:
                _roll_back(session)
            elif session.info["writes"]:  # a read-only unit has nothing to commit
                session.info["ending"] = True
                try:
                    session.commit()
                except BaseException:
                    _roll_back(session)
                    raise
                self.after_commit(session)
        finally:
            session.close()


def _connect(session: Session, options: dict[str, Any], deadline: float) -> None:
    """Take the session's connection and begin, by ``deadline`` (``engine.py`` reads it)."""
    token = DEADLINE.set(deadline)
    try:
        session.info["options"] = options
        session.connection(execution_options=options).info[_SENT] = 0
    finally:
        DEADLINE.reset(token)


def _count_statement(connection: Connection, *_args: Any) -> None:
    connection.info[_SENT] = connection.info.get(_SENT, 0) + 1
    if (counted := STATEMENTS.get()) is not None:
        counted[0] += 1


def _roll_back(session: Session) -> None:
    try:
        session.rollback()
    except Exception:
        # The transaction is lost either way; the connection must not be reused.
        logger.warning("Rollback failed; discarding the connection", exc_info=True)
        session.invalidate()


def _refuse(session: Session, what: str) -> None:
    raise ReadOnlyError(
        f"{session.info.get('name', 'A unit of work')} is read-only and cannot {what}."
        " If it must write, say so: session: WriteSessionDep in a route,"
        " open_session(writes=True) elsewhere."
    )


@event.listens_for(UnitSession, "do_orm_execute")
def _guard_each_statement(execution: ORMExecuteState) -> Any:
    """Refuse a read-only unit's INSERT, UPDATE or DELETE; rerun a first statement that
    found its connection dead (see above)."""
    session = execution.session
    if not session.info["writes"] and (
        execution.is_insert or execution.is_update or execution.is_delete
    ):
        kind = execution.statement.__visit_name__.upper()
        mapper = execution.bind_mapper
        table = f" on {mapper.local_table.description}" if mapper is not None else ""
        _refuse(session, f"run {kind}{table}")
    if session.connection().info.get(_SENT) != 0:
        return None
    try:
        return execution.invoke_statement()
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
    logger.warning("%s found its connection dead; running it again", session.info["name"])
    _roll_back(session)
    session.connection(execution_options=session.info["options"]).info[_SENT] = 0
    return execution.invoke_statement()


@event.listens_for(UnitSession, "before_flush")
def _refuse_changes(session: Session, _context: Any, _instances: Any) -> None:
    if not session.info["writes"]:
        _refuse(session, "flush changes")


@event.listens_for(UnitSession, "before_commit")
def _commit_only_as_it_ends(session: Session) -> None:
    """A unit commits once, as it ends: a commit in the middle would half-write it."""
    if not session.info.get("ending"):
        raise InvalidRequestError(
            f"{session.info.get('name', 'A unit of work')} commits when it ends:"
            " routes and repositories do not commit."
        )
