{% set is_async = cookiecutter.driver == "async" %}
"""The PostgreSQL engine ({{ "asyncpg" if is_async else "psycopg 3" }}).

Read-only units run in autocommit: a GET is one round trip, not three (BEGIN, SELECT,
COMMIT). A pooled connection is checked before it is lent: without a round trip when
idle for less than ``DB_PING_AFTER`` (a server that closed it left its goodbye on the
socket), else with a ping; one found closed is replaced. A new connection gets what is
left of its unit's ``DB_POOL_TIMEOUT`` and the server's own guards,
``DB_STATEMENT_TIMEOUT`` and ``DB_IDLE_IN_TRANSACTION_TIMEOUT``. SQL parameters are
never logged. ``failure_of()`` reads a failure's SQLSTATE and whether SQLAlchemy found
the connection dead, not its class{{ ":" if is_async else "." }}
{% if is_async %}
asyncpg's "cannot connect now" and "connection does not exist" arrive as plain
``DBAPIError``, and its ``is_closed()`` turns true only once the goodbye is read.
{% else %}
psycopg counts a connect timeout in whole seconds, at least 2.
{% endif %}
"""

import select
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import Connection, Engine, {{ "" if is_async else "create_engine, " }}event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
{% if is_async %}
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
{% endif %}
from sqlalchemy.pool import ConnectionPoolEntry

from ..settings import Settings
from .errors import Failure

# Shown in pg_stat_activity, so operators can tell this service's connections apart.
APPLICATION_NAME = "{{ cookiecutter.project_slug }}"

# SQLSTATEs (PostgreSQL's "Appendix A. Error Codes") by what they mean.
_UNIQUE_VIOLATION = "23505"
_CONTENDED = frozenset({"40001", "40P01", "55P03"})  # serialization, deadlock, lock not available
_QUERY_CANCELED = "57014"  # by statement_timeout (or a cancel request)
# Connection exceptions, insufficient resources, operator intervention (restart, crash).
_UNAVAILABLE_CLASSES = ("08", "53", "57")
_READ_ONLY_TRANSACTION = "25006"  # connected to a standby, or a read-only server
_RETURNED_AT = "returned_at"

# When the unit of work taking a connection must have it (time.monotonic()); unit.py sets it.
DEADLINE: ContextVar[float] = ContextVar("DEADLINE")
READ_ONLY_OPTIONS: dict[str, Any] = {"writes": False, "isolation_level": "AUTOCOMMIT"}


def build_engine(settings: Settings) -> {{ "AsyncEngine" if is_async else "Engine" }}:
    """An engine for ``settings.database_url``; the caller disposes of it."""
    engine = {{ "create_async_engine" if is_async else "create_engine" }}(
        settings.database_url,
        echo=settings.db_echo,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        hide_parameters=True,
        connect_args=_connect_args(settings),
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
            # asyncpg lets socket errors through as OSError: made the driver's, SQLAlchemy's.
            raise dialect.loaded_dbapi.OperationalError(str(error) or repr(error)) from error
{% else %}
        # psycopg counts whole seconds, and waits at least 2.
        connect_timeout = max(2, int(time_left(timeout)))
        return dialect.connect(*cargs, **{**cparams, "connect_timeout": connect_timeout})
{% endif %}

    _check_when_lent(sync_engine, settings.db_ping_after)
    return engine


def _connect_args(settings: Settings) -> dict[str, Any]:
    guards = {
        "statement_timeout": settings.db_statement_timeout,
        "idle_in_transaction_session_timeout": settings.db_idle_in_transaction_timeout,
    }
    # In milliseconds; 0 switches a guard off.
    parameters = {name: str(round(seconds * 1000)) for name, seconds in guards.items()}
{% if is_async %}
    return {"server_settings": {"application_name": APPLICATION_NAME, **parameters}}
{% else %}
    options = " ".join(f"-c {name}={value}" for name, value in parameters.items())
    return {"application_name": APPLICATION_NAME, "options": options}
{% endif %}


def time_left(timeout: float) -> float:
    """What is left of the wait of the unit of work connecting now (else ``timeout``)."""
    deadline = DEADLINE.get(None)
    return timeout if deadline is None else max(deadline - time.monotonic(), 0.001)


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
    """The server wrote to a connection nobody uses: its goodbye, or the socket's end."""
{% if is_async %}
    connection = dbapi_connection.driver_connection
    if connection.is_closed():
        return True
    # asyncpg offers no public way to its socket.
    fileno = connection._transport.get_extra_info("socket").fileno()
{% else %}
    if dbapi_connection.closed or dbapi_connection.broken:
        return True
    fileno = dbapi_connection.fileno()
{% endif %}
    readable, _, _ = select.select([fileno], [], [], 0)
    return bool(readable)


def failure_of(error: Exception) -> Failure:
    """What a failed database operation means (see above)."""
    if isinstance(error, PoolTimeoutError):
        return Failure.UNAVAILABLE
    if not isinstance(error, DBAPIError):
        return Failure.INTERNAL
    sqlstate = error_code(error) or ""
    if sqlstate == _UNIQUE_VIOLATION:
        return Failure.DUPLICATE
    if sqlstate in _CONTENDED:
        return Failure.CONTENDED
    if sqlstate == _QUERY_CANCELED:
        return Failure.TIMED_OUT
    if (
        error.connection_invalidated
        or sqlstate[:2] in _UNAVAILABLE_CLASSES
        or sqlstate == _READ_ONLY_TRANSACTION
    ):
        return Failure.UNAVAILABLE
    if not sqlstate and isinstance(error, OperationalError | InterfaceError):
        return Failure.UNAVAILABLE  # the driver's own: a connection not made, or lost
    return Failure.INTERNAL


def error_code(error: Exception) -> str | None:
    """The SQLSTATE of a failed database operation, if the server gave one."""
    return getattr(getattr(error, "orig", None), "sqlstate", None)


def is_unique_violation(error: IntegrityError) -> bool:
    """Whether ``error`` is a unique (or primary key) constraint violation."""
    return error_code(error) == _UNIQUE_VIOLATION


@contextmanager
def migration_transaction(connection: Connection) -> Iterator[None]:
    """The transaction a run of migrations changes the schema in: PostgreSQL's DDL is
    transactional, so a migration that fails changes nothing."""
    with connection.begin():
        yield
