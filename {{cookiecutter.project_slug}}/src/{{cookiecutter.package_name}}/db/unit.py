{% set is_async = cookiecutter.driver == "async" %}
{% set Session = "AsyncSession" if is_async else "Session" %}
{% set is_pg = cookiecutter.database == "postgresql" %}
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
{% if is_pg %}

**Standbys** (``DATABASE_REPLICA_URLS``): a read-only unit of work runs on
a standby in rotation that has replayed what its request must see, and on
the primary otherwise (``replicas.py``: the consistency model); a unit that
cannot connect to its standby, or whose first statement found the connection
dead, reads from the primary instead. A unit that wrote leaves, once
committed, the primary's WAL position for its request's token.
``open_session(primary=True)`` reads from the primary whatever it does.
{% endif %}
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
from .engine import DEADLINE, build_engine{{ ", failure_of" if is_pg }}, read_only_options
{% if is_pg %}
from .errors import Failure
{% endif %}
from .metrics import POOL_WAITING, observe_pool
{% if is_pg %}
from .replicas import (
    PRIMARY,
    Replicas,
    Standby,
    positions,
    record,
    replayed_position,
    standby_state,
    written_position,
)
{% endif %}

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
    ``name``, what it is (such as ``GET /items/{item_id}``){% if is_pg %}; ``standby``, the
    standby it reads from, if it does{% endif %}."""
{% if is_pg %}

    def get_bind(self, *args: Any, **kwargs: Any) -> Any:
        standby = self.info.get("standby")
        return standby.engine{{ ".sync_engine" if is_async }} if standby else super().get_bind(*args, **kwargs)
{% endif %}


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
        connections = settings.db_pool_size + settings.db_max_overflow
        self._places = asyncio.Semaphore(connections)
{% else %}
        self.sessionmaker = sessionmaker(
            self.engine, class_=UnitSession, expire_on_commit=False, close_resets_only=False
        )
        connections = settings.db_pool_size + settings.db_max_overflow
        self._places = asyncio.Semaphore(connections)
{% if is_pg %}
        # Each server's sessions may all be busy in the session threads at once.
        self._threads = CapacityLimiter(connections * (1 + len(settings.database_replica_urls)))
{% else %}
        self._threads = CapacityLimiter(connections)
{% endif %}
{% endif %}
        self._timeout = settings.db_pool_timeout
        # The execution options of a unit of work that writes, or not (engine.py).
        self._options = {True: {"writes": True}, False: read_only_options(settings)}
        event.listen(self.engine{{ ".sync_engine" if is_async }}, "before_cursor_execute", _count_statement)
        observe_pool(self.engine.pool)
{% if is_pg %}
        standbys = [
            Standby(url, build_engine(settings, url), asyncio.Semaphore(connections))
            for url in settings.database_replica_urls
        ]
        for standby in standbys:
            event.listen(standby.engine{{ ".sync_engine" if is_async }}, "before_cursor_execute", _count_statement)
            standby.observe_pool()
        self.replicas = Replicas(
            standbys, wait=settings.db_replica_wait, max_lag=settings.db_replica_max_lag
        )
{% endif %}

    def join(self, connection: {{ "AsyncConnection" if is_async else "Connection" }}) -> None:
        """Run every session inside ``connection``'s transaction, each in a SAVEPOINT of
        its own, so that a commit only releases it (tests roll the transaction back).
        A joined session cannot choose its isolation level: read-only ones join too."""
        self.sessionmaker.configure(bind=connection, join_transaction_mode="create_savepoint")
        self._options[False] = {"writes": False}
{% if is_pg %}
        self.replicas.standbys.clear()  # every session reads in the connection's transaction
{% endif %}

    @asynccontextmanager
    async def open_session(
        self,
        *,
        writes: bool = True,
        name: str = "open_session()",
        join: bool = False,
{% if is_pg %}
        primary: bool = False,
{% endif %}
    ) -> AsyncIterator[{{ Session }}]:
        """A unit of work of its own, for work outside a request: committed when the
        block succeeds, rolled back when it raises (``join``: see ``begin()``{% if is_pg %};
        ``primary``: it reads from the primary even if it only reads{% endif %}).

{% if is_async %}
        ``async with database.open_session() as session: ...``
{% else %}
        ``async with database.open_session() as session: await database.run(session, ...)``
{% endif %}
        """
        session = await self.begin(writes=writes, name=name, join=join{{ ", primary=primary" if is_pg }})
        try:
            yield session
        except BaseException:
            await self.end(session, commit=False)
            raise
        await self.end(session, commit=True)

    async def begin(
        self,
        *,
        writes: bool = True,
        name: str = "A unit of work",
        join: bool = False,
{% if is_pg %}
        primary: bool = False,
{% endif %}
    ) -> {{ Session }}:
        """A new session that holds a connection, once one is free (see above); with
        ``join``, the unit of work shared in this context, if there is one."""
        shared = _SHARED.get() if join else None
        if shared is not None:
            shared.info["joined"] += 1
            return shared
        deadline = time.monotonic() + self._timeout
{% if is_pg %}
        if not writes and not primary and self.replicas:
            session = await self._begin_on_a_standby(name, deadline)
            if session is not None:
                return session
            record(PRIMARY)
{% endif %}
        return await self._begin(self._places, writes=writes, name=name, deadline=deadline)

    async def _begin(
        self,
        places: asyncio.Semaphore,
        *,
        writes: bool,
        name: str,
        deadline: float,
{% if is_pg %}
        standby: Standby | None = None,
{% endif %}
    ) -> {{ Session }}:
        POOL_WAITING.inc()
        try:
            async with asyncio.timeout(deadline - time.monotonic()):
                await places.acquire()
        except TimeoutError:
            message = f"No database connection was free within {self._timeout:g} s."
            raise PoolTimeoutError(message) from None
        finally:
            POOL_WAITING.dec()
        info: dict[str, Any] = {"writes": writes, "name": name, "places": places}
{% if is_pg %}
        if standby is not None:
            info["standby"] = standby
{% endif %}
        session = self.sessionmaker(info=info)
        try:
            await self.run(session, _connect, self._options[writes], deadline)
        except BaseException:
            with CancelScope(shield=True):
                await self._finish(session, commit=False)
            raise
        self._observe(session)
        return session
{% if is_pg %}

    async def _begin_on_a_standby(self, name: str, deadline: float) -> {{ Session }} | None:
        """A read-only session on a standby in rotation that has replayed what this context
        must see, within ``DB_REPLICA_WAIT``; ``None``: read from the primary."""
        standbys = self.replicas.in_turn()
        if not standbys:
            return None
        context = positions()
        required = context.required if context is not None else None
        if required is not None:
            # One that is known to be far enough, else the next one's turn, if it gets there.
            standbys = [s for s in standbys if s.replayed >= required] or standbys[:1]
        standby = standbys[0]
        behind = required is not None and standby.replayed < required
        if behind and standby.lag > self.replicas.wait:
            # It would not get there in time: waiting would only hold one of its connections.
            return None
        try:
            session = await self._begin(
                standby.places, writes=False, name=name, deadline=deadline, standby=standby
            )
        except DBAPIError as error:
            # Down, starting, refusing this service: its reads go elsewhere meanwhile.
            standby.take_out(f"it cannot be reached ({type(error.orig).__name__})")
            return None
        if required is not None and standby.replayed < required:
            waited_out = min(deadline, time.monotonic() + self.replicas.wait)
            while True:
                try:
                    standby.saw(await self.run(session, _replayed))
                except DBAPIError:
                    standby.take_out("it stopped answering")
                    with CancelScope(shield=True):
                        await self._finish(session, commit=False)
                    return None
                if standby.replayed >= required:
                    break
                if time.monotonic() >= waited_out:
                    with CancelScope(shield=True):
                        await self._finish(session, commit=False)
                    return None
                await asyncio.sleep(min(0.005, max(waited_out - time.monotonic(), 0)))
        record(standby.name)
        return session

    async def watch_standbys(self, interval: float) -> None:
        """Check each standby every ``interval`` seconds, and take it out of rotation or
        put it back by what it says (``replicas.py``); runs until cancelled."""
        while True:
            for standby in self.replicas.standbys:
                self.replicas.judge(standby, await self._check(standby))
            await asyncio.sleep(interval)

    async def _check(self, standby: Standby) -> tuple[bool, int | None, float] | None:
        """What ``standby`` says of itself; ``None`` if it cannot be asked."""
        try:
            session = await self._begin(
                standby.places,
                writes=False,
                name="A standby's check",
                deadline=time.monotonic() + self._timeout,
                standby=standby,
            )
        except (DBAPIError, PoolTimeoutError, OSError):
            return None
        try:
            return await self.run(session, standby_state)
        except DBAPIError:
            return None
        finally:
            with CancelScope(shield=True):
                await self._finish(session, commit=False)
{% endif %}

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
{% if is_pg %}
            position = await self._finish(session, commit=commit)
        context = positions()
        if position is not None and context is not None:
            context.wrote(position)
{% else %}
            await self._finish(session, commit=commit)
{% endif %}

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
{% if is_pg %}
        """Raise unless the primary answers a query (standbys alone cannot take writes)."""
        async with self.open_session(writes=False, name="ping()", primary=True) as session:
{% else %}
        """Raise unless the database answers a query."""
        async with self.open_session(writes=False, name="ping()") as session:
{% endif %}
            await self.run(session, Session.execute, select(1))

    async def dispose(self) -> None:
        """Close every pooled connection; the service is stopping."""
{% if is_pg %}
        for engine in [self.engine, *(standby.engine for standby in self.replicas.standbys)]:
{% if is_async %}
            await engine.dispose()
{% else %}
            await to_thread.run_sync(engine.dispose, limiter=self._threads)
{% endif %}
{% elif is_async %}
        await self.engine.dispose()
{% else %}
        await to_thread.run_sync(self.engine.dispose, limiter=self._threads)
{% endif %}

    async def _finish(self, session: {{ Session }}, *, commit: bool) -> {{ "int | None" if is_pg else "None" }}:
{% if is_pg %}
        # A commit that must tell where it left the primary (see replicas.py).
        tells = bool(self.replicas) and session.info["writes"] and positions() is not None
        try:
            return await self.run(session, _finish, commit, self._options[False] if tells else None)
{% else %}
        try:
            await self.run(session, _finish, commit)
{% endif %}
        finally:
            session.info["places"].release()
            self._observe(session)

    def _observe(self, session: {{ Session }}) -> None:
{% if is_pg %}
        standby: Standby | None = session.info.get("standby")
        if standby is not None:
            standby.observe_pool()
            return
{% endif %}
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


{% if is_pg %}
def _finish(session: Session, commit: bool, tell: dict[str, Any] | None) -> int | None:
    """Commit (or roll back), then close ``session``. A failed commit is rolled back
    and raised; a failed rollback is logged and the connection discarded. With
    ``tell`` (a read's execution options), the primary's WAL position after the commit."""
    position = None
{% else %}
def _finish(session: Session, commit: bool) -> None:
    """Commit (or roll back), then close ``session``. A failed commit is rolled back
    and raised; a failed rollback is logged and the connection discarded."""
{% endif %}
    try:
        if commit:
            try:
                session.commit()
            except BaseException:
                _roll_back(session)
                raise
{% if is_pg %}
            if tell is not None:
                position = written_position(session, tell)
{% endif %}
        else:
            _roll_back(session)
    finally:
        session.close()
{% if is_pg %}
    return position


def _replayed(session: Session) -> int:
    """How far the session's standby has replayed. The check is no statement of the unit's
    own: its first statement still runs again if it finds the connection dead."""
    replayed = replayed_position(session)
    session.connection().info[_SENT] = 0
    return replayed
{% endif %}


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
{% if is_pg %}
        # On a standby, any sign that it is going away sends the unit to the primary.
        on_standby = "standby" in session.info and failure_of(error) is Failure.UNAVAILABLE
        if not (error.connection_invalidated or on_standby):
            raise
{% else %}
        if not error.connection_invalidated:
            raise
{% endif %}
    logger.warning(
        "%s found its connection dead; running it again on a new one", session.info.get("name")
    )
    _roll_back(session)
{% if is_pg %}
    standby: Standby | None = session.info.pop("standby", None)
    if standby is not None:
        # The primary reads it instead: the standby may be going away.
        standby.take_out("a connection to it was found dead")
{% endif %}
    session.connection(execution_options=session.info["options"]).info[_SENT] = 0
    return execution.invoke_statement()


@event.listens_for(UnitSession, "before_flush")
def _refuse_changes(session: Session, _context: Any, _instances: Any) -> None:
    if not _writes(session):
        _refuse(session, "flush changes")
