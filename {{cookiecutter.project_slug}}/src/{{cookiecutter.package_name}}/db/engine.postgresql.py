{% set is_async = cookiecutter.driver == "async" %}
"""The PostgreSQL engine ({{ "asyncpg" if is_async else "psycopg 3" }}).

A read-only unit of work (``unit.py``) runs in autocommit: each statement is
a transaction of its own, so a GET costs one round trip instead of three
(BEGIN, the SELECT, COMMIT). It reads what it would read in a transaction:
at PostgreSQL's READ COMMITTED every statement sees the data committed when
it starts either way.
{% if is_async %}

Not behind PgBouncer, though: asyncpg prepares a statement and runs it in two
exchanges, which PgBouncer may send to two different server connections
unless a transaction holds them together.
{% endif %}

Behind PgBouncer in transaction mode (``DB_PGBOUNCER=true``) consecutive
transactions of one connection may run on different server connections, so
nothing may rely on a prepared statement surviving its transaction:
{% if is_async %}
asyncpg prepares every statement, so each gets a name of its own and neither
asyncpg nor SQLAlchemy keeps a cache of them (SQLAlchemy's documented recipe).
{% else %}
psycopg 3 prepares a statement once it ran it five times; that is switched off.
{% endif %}

A connection the pool lends again is checked without a round trip when it was
idle for less than ``DB_PING_AFTER`` seconds: one the server closed (a
restart, ``pg_terminate_backend``, ``idle_session_timeout``) {{ "is marked closed by asyncpg" if is_async else "has data or its end waiting on its socket" }},
and is pinged, then replaced, before any statement is sent on it. A connection
idle for longer is pinged: a firewall or NAT that dropped it silently leaves
no trace on the socket. Under load connections come back within
milliseconds, so the ping's round trips are saved on nearly every request.

A new connection gets what is left of its unit of work's ``DB_POOL_TIMEOUT``
to connect (``time_left()``){% if not is_async %}, in whole seconds and at least 2: psycopg's
granularity{% endif %}.
"""

{% if is_async %}
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from uuid import uuid4

from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DisconnectionError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
{% else %}
import select
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DisconnectionError, IntegrityError
from sqlalchemy.pool import ConnectionPoolEntry
{% endif %}

from ..settings import Settings

# Shown in pg_stat_activity, so operators can tell this service's connections apart.
APPLICATION_NAME = "{{ cookiecutter.project_slug }}"

_UNIQUE_VIOLATION = "23505"
_RETURNED_AT = "returned_at"

# When the unit of work taking a connection must have it (time.monotonic()); unit.py sets it.
DEADLINE: ContextVar[float] = ContextVar("DEADLINE")
{% if is_async %}

_PGBOUNCER_CONNECT_ARGS: dict[str, Any] = {
    "statement_cache_size": 0,
    "prepared_statement_cache_size": 0,
    "prepared_statement_name_func": lambda: f"__asyncpg_{uuid4()}__",
}
{% endif %}


def build_engine(settings: Settings) -> {{ "AsyncEngine" if is_async else "Engine" }}:
    """An engine for ``settings.database_url``; the caller disposes of it."""
    engine = {{ "create_async_engine" if is_async else "create_engine" }}(
        settings.database_url,
        echo=settings.db_echo,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        connect_args={
{% if is_async %}
            "server_settings": {"application_name": APPLICATION_NAME},
            **(_PGBOUNCER_CONNECT_ARGS if settings.db_pgbouncer else {}),
{% else %}
            "application_name": APPLICATION_NAME,
            **({"prepare_threshold": None} if settings.db_pgbouncer else {}),
{% endif %}
        },
    )
    sync_engine = engine{{ ".sync_engine" if is_async else "" }}
    timeout = settings.db_pool_timeout

    @event.listens_for(sync_engine, "do_connect")
    def connect(dialect: Dialect, _record: Any, cargs: Any, cparams: Any) -> Any:
        """Connect within what is left of the unit of work's wait (see above)."""
{% if is_async %}
        try:
            return dialect.connect(*cargs, **{**cparams, "timeout": time_left(timeout)})
        except OSError as error:
            # asyncpg lets socket errors (refused, unreachable, timed out) through as plain
            # OSError; as the driver's OperationalError they become SQLAlchemy's.
            raise dialect.loaded_dbapi.OperationalError(str(error) or repr(error)) from error
{% else %}
        # psycopg counts whole seconds, and waits at least 2.
        connect_timeout = max(2, int(time_left(timeout)))
        return dialect.connect(*cargs, **{**cparams, "connect_timeout": connect_timeout})
{% endif %}

    _check_when_lent(sync_engine, settings.db_ping_after)
    return engine


def time_left(timeout: float) -> float:
    """What is left of the wait of the unit of work connecting now: its one budget
    (``timeout`` outside a unit of work)."""
    deadline = DEADLINE.get(None)
    return timeout if deadline is None else max(deadline - time.monotonic(), 0.001)


def read_only_options(settings: Settings) -> dict[str, Any]:
    """The execution options of a read-only unit of work (see above)."""
{% if is_async %}
    if settings.db_pgbouncer:
        return {"writes": False}
{% endif %}
    return {"writes": False, "isolation_level": "AUTOCOMMIT"}


def _check_when_lent(engine: Engine, ping_after: float) -> None:
    """Replace a pooled connection the server closed before lending it (see above)."""

    @event.listens_for(engine, "checkin")
    def returned(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def lent(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        returned_at = record.info.get(_RETURNED_AT)
        if returned_at is None:
            return  # connected just now
        recent = time.monotonic() - returned_at < ping_after
        if recent and not _looks_closed(dbapi_connection):
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            # The pool closes this connection and lends a new one.
            raise DisconnectionError("The server closed the connection.") from error


def _looks_closed(dbapi_connection: Any) -> bool:
{% if is_async %}
    """asyncpg noticed the server's goodbye while the connection sat in the pool."""
    return bool(dbapi_connection.driver_connection.is_closed())
{% else %}
    """The server wrote to a connection nobody uses: its goodbye, or the socket's end."""
    if dbapi_connection.closed or dbapi_connection.broken:
        return True
    readable, _, _ = select.select([dbapi_connection.fileno()], [], [], 0)
    return bool(readable)
{% endif %}


def is_unique_violation(error: IntegrityError) -> bool:
    """Whether ``error`` is a unique (or primary key) constraint violation."""
    return getattr(error.orig, "sqlstate", None) == _UNIQUE_VIOLATION


@contextmanager
def migration_transaction(connection: Connection) -> Iterator[None]:
    """The transaction a run of migrations changes the schema in: PostgreSQL's DDL is
    transactional, so a migration that fails changes nothing."""
    with connection.begin():
        yield
