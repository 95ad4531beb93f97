{% set is_async = cookiecutter.driver == "async" %}
{% set Session = "AsyncSession" if is_async else "Session" %}
"""The unit of work: how every request, background task and script uses the database.

A unit of work gets one session of its own and ends in one of two ways:

- it succeeded: commit. A commit that fails is rolled back and its error
  raised, for the caller to report (``errors.py`` turns it into 409/500/503).
- it failed, or a request's response is an error: roll back.

Either way the session is then closed for good — using it again raises an
error instead of quietly checking out another connection — and its
connection goes back to the pool. Ending is shielded from cancellation: a
client that goes away mid-request cannot leave a connection checked out.

**Read-only units** (``writes=False``: a ``GET``, ``HEAD`` or ``OPTIONS``
request unless its route says otherwise, ``open_session(writes=False)``) are
cheaper: ``engine.read_only_options`` runs them without a write transaction.
So they must not write: their session refuses to flush changes and to execute
an INSERT, UPDATE or DELETE, with a ``ReadOnlyError`` that names the unit,
before the database sees them. SQL written as text, or run on the connection
itself, is not inspected.

**One wait, bounded by ``DB_POOL_TIMEOUT``**: a unit queues for a place,
first come, first served (at most as many units hold sessions as the pool has
connections), then takes its connection — a new connection's setup{% if cookiecutter.database == "sqlite" %} and
SQLite's write lock{% endif %} included — with what is left of the same time
(``engine.time_left()``). Past it the unit gets SQLAlchemy's pool
``TimeoutError`` or the driver's timeout: a 503. The pool's gauges
(``db/metrics.py``) follow every step.
{% if not is_async %}

The session blocks, so taking its connection, committing, rolling back and
closing run in threads of their own, one per connection (anyio's, which keep
context variables such as request ids), never in the threadpool that runs the
plain ``def`` endpoints: a worker there waiting for a connection whose holder
needs a worker to finish its response would deadlock it under load. Each hop
runs to the end even when the request is cancelled, so a session is never
used from two threads at once.
{% endif %}

``session.py`` decides *when* a request's unit of work ends; this module
decides *how*. Work outside a request uses ``Database.open_session()``.

**A first statement that found its connection dead runs again**, once, on
a new connection: the server lost the transaction with the connection, and
nothing was read from it yet, so nothing can be doubled or half-seen. (The
pool replaces a connection it sees closed before lending it, ``engine.py``;
this covers a connection that died in the instant after.) Any later
statement, and a commit, is not retried: earlier statements of the lost
transaction would be missing, and a commit whose answer was lost may have
been stored. Those fail, with a 503 (``errors.py``); a client retries a write
safely with an ``Idempotency-Key``.

**A unit begun early**: a write with an ``Idempotency-Key`` begins its unit
of work before the application runs, to claim the key, and shares it
(``share()``): the request's session joins it (``begin(join=True)``) instead
of beginning one of its own. Ending a joined session leaves the commit to the
unit's owner, and a rollback makes the owner's commit a rollback too.
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
from .engine import DEADLINE, build_engine, read_only_options
from .metrics import POOL_WAITING, observe_pool

logger = logging.getLogger(__name__)

# How many statements a unit of work's connection has sent (see "A first statement...").
_SENT = "statements_sent"

# The unit of work that sessions begun with join=True join (Database.share()).
_SHARED: ContextVar[{{ Session }} | None] = ContextVar("_SHARED", default=None)
{% if cookiecutter.python_version == "3.11" %}

T = TypeVar("T")
{% endif %}


class ReadOnlyError(InvalidRequestError):
    """A read-only unit of work tried to write."""


class UnitSession(Session):
    """The session of a unit of work: ``info`` holds ``writes``, what it promised, and
    ``name``, what it is (such as ``GET /items/{item_id}``)."""


class Database:
    """The engine of a running service and the one way to open and end its sessions."""

    def __init__(self, settings: Settings) -> None:
        self.engine = build_engine(settings)
{% if is_async %}
        self.sessionmaker = async_sessionmaker(
            self.engine,
            sync_session_class=UnitSession,
            expire_on_commit=False,
            close_resets_only=False,
        )
        self._places = asyncio.Semaphore(settings.db_pool_size + settings.db_max_overflow)
{% else %}
        self.sessionmaker = sessionmaker(
            self.engine, class_=UnitSession, expire_on_commit=False, close_resets_only=False
        )
        connections = settings.db_pool_size + settings.db_max_overflow
        self._places = asyncio.Semaphore(connections)
        self._threads = CapacityLimiter(connections)
{% endif %}
        self._timeout = settings.db_pool_timeout
        # The execution options of a unit of work that writes, or not (engine.py).
        self._options = {True: {"writes": True}, False: read_only_options(settings)}
        event.listen(self.engine{{ ".sync_engine" if is_async }}, "before_cursor_execute", _count_statement)
        observe_pool(self.engine.pool)

    def join(self, connection: {{ "AsyncConnection" if is_async else "Connection" }}) -> None:
        """Run every session inside ``connection``'s transaction, each in a SAVEPOINT of
        its own, so that a commit only releases it (tests roll the transaction back).
        A joined session cannot choose its isolation level: read-only ones join too."""
        self.sessionmaker.configure(bind=connection, join_transaction_mode="create_savepoint")
        self._options[False] = {"writes": False}

    @asynccontextmanager
    async def open_session(
        self, *, writes: bool = True, name: str = "open_session()", join: bool = False
    ) -> AsyncIterator[{{ Session }}]:
        """A unit of work of its own, for work outside a request: committed when the
        block succeeds, rolled back when it raises (``join``: see ``begin()``).

{% if is_async %}
        ``async with database.open_session() as session: ...``
{% else %}
        ``async with database.open_session() as session: await database.run(session, ...)``
{% endif %}
        """
        session = await self.begin(writes=writes, name=name, join=join)
        try:
            yield session
        except BaseException:
            await self.end(session, commit=False)
            raise
        await self.end(session, commit=True)

    async def begin(
        self, *, writes: bool = True, name: str = "A unit of work", join: bool = False
    ) -> {{ Session }}:
        """A new session that holds a connection, once one is free (see above); with
        ``join``, the unit of work shared in this context, if there is one."""
        shared = _SHARED.get() if join else None
        if shared is not None:
            shared.info["joined"] += 1
            return shared
        deadline = time.monotonic() + self._timeout
        POOL_WAITING.inc()
        try:
            async with asyncio.timeout(self._timeout):
                await self._places.acquire()
        except TimeoutError:
            message = f"No database connection was free within {self._timeout:g} s."
            raise PoolTimeoutError(message) from None
        finally:
            POOL_WAITING.dec()
        session = self.sessionmaker(info={"writes": writes, "name": name})
        try:
            await self.run(session, _connect, self._options[writes], deadline)
        except BaseException:
            with CancelScope(shield=True):
                await self._finish(session, commit=False)
            raise
        observe_pool(self.engine.pool)
        return session

    def share(self, session: {{ Session }}) -> None:
        """Let the sessions begun with ``join=True`` in this context (the request's) join
        ``session`` until it ends (see above)."""
        session.info["joined"] = 0
        _SHARED.set(session)

    async def end(self, session: {{ Session }}, *, commit: bool) -> None:
        """Commit (or roll back), then close. A failed commit is rolled back and raised,
        and so is the cancellation of a unit of work that was cancelled before its commit.
        A session that joined another's unit only leaves it (see above)."""
        joined = session.info.get("joined", 0)
        if joined:
            session.info["joined"] = joined - 1
            session.info["rolled_back"] = session.info.get("rolled_back", False) or not commit
            return
        if _SHARED.get() is session:
            _SHARED.set(None)
        commit = commit and not session.info.get("rolled_back", False)
        if commit:
            try:
                await checkpoint_if_cancelled()
            except BaseException:
                await self.end(session, commit=False)
                raise
        with CancelScope(shield=True):
            await self._finish(session, commit=commit)

    async def run{{ "" if cookiecutter.python_version == "3.11" else "[T]" }}(self, session: {{ Session }}, call: Callable[..., T], *args: Any) -> T:
{% if is_async %}
        """``call(session, *args)`` with the blocking ``Session`` API, in a greenlet."""
{% else %}
        """``call(session, *args)`` in the session threads: blocking work outside an endpoint."""
{% endif %}
{% if is_async %}
        return await session.run_sync(call, *args)
{% else %}
        return await to_thread.run_sync(call, session, *args, limiter=self._threads)
{% endif %}

    async def ping(self) -> None:
        """Raise unless the database answers a query."""
        async with self.open_session(writes=False, name="ping()") as session:
            await self.run(session, Session.execute, select(1))

    async def dispose(self) -> None:
        """Close every pooled connection; the service is stopping."""
{% if is_async %}
        await self.engine.dispose()
{% else %}
        await to_thread.run_sync(self.engine.dispose, limiter=self._threads)
{% endif %}

    async def _finish(self, session: {{ Session }}, *, commit: bool) -> None:
        try:
            await self.run(session, _finish, commit)
        finally:
            self._places.release()
            observe_pool(self.engine.pool)


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


def _finish(session: Session, commit: bool) -> None:
    """Commit (or roll back), then close ``session``. A failed commit is rolled back
    and raised; a failed rollback is logged and the connection discarded."""
    try:
        if commit:
            try:
                session.commit()
            except BaseException:
                _roll_back(session)
                raise
        else:
            _roll_back(session)
    finally:
        session.close()


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


def _writes(session: Session) -> bool:
    return bool(session.info.get("writes", True))


@event.listens_for(UnitSession, "do_orm_execute")
def _refuse_write_statements(execution: ORMExecuteState) -> None:
    if _writes(execution.session):
        return
    for kind in ("insert", "update", "delete"):
        if getattr(execution, f"is_{kind}"):
            mapper = execution.bind_mapper
            table = f" on {mapper.local_table.description}" if mapper is not None else ""
            _refuse(execution.session, f"run {kind.upper()}{table}")


@event.listens_for(UnitSession, "do_orm_execute")
def _run_a_first_statement_again_on_a_dead_connection(execution: ORMExecuteState) -> Any:
    """See "A first statement..." above; runs after the read-only check."""
    session = execution.session
    if session.connection().info.get(_SENT) != 0:
        return None
    try:
        return execution.invoke_statement()
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
    logger.warning(
        "%s found its connection dead; running it again on a new one", session.info.get("name")
    )
    session.rollback()
    session.connection(execution_options=session.info["options"]).info[_SENT] = 0
    return execution.invoke_statement()


@event.listens_for(UnitSession, "before_flush")
def _refuse_changes(session: Session, _context: Any, _instances: Any) -> None:
    if not _writes(session):
        _refuse(session, "flush changes")
