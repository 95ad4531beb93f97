{% set is_async = cookiecutter.driver == "async" %}
"""The SQLite engine ({{ "aiosqlite" if is_async else "the standard library's sqlite3" }}).

SQLite as a service database, set up on every connection:

- the driver's own transaction handling switched off, so that SQLAlchemy's
  BEGIN, SAVEPOINT and ROLLBACK mean what they say (without it a SAVEPOINT is
  not honoured and a rolled-back test can leave rows behind);
- foreign keys switched on;
- write-ahead logging (readers never block the writer, nor it them) with
  ``synchronous=NORMAL`` (durable at every checkpoint, and a crash cannot
  corrupt the database);
- a busy timeout of what is left of the unit of work's ``DB_POOL_TIMEOUT``
  (``time_left()``) when it begins: a writer waits its turn for the lock;
- a unit of work that may write begins with ``BEGIN IMMEDIATE``, taking the
  write lock up front. A deferred transaction that read first could not wait
  for it later: SQLite would refuse it at once with "database is locked",
  whatever the busy timeout. Read-only work (``writes=False``, such as GET
  requests) begins deferred and runs alongside the writer.

Migrations change the schema as SQLite's documentation prescribes for a
table rebuild (what Alembic's batch mode does: a new table, the rows copied,
the old one dropped): foreign keys off outside the migration's transaction,
so that dropping the old table cascades to nothing, and
``PRAGMA foreign_key_check`` before the commit, so that a migration that
would leave a row pointing nowhere fails and changes nothing. A rebuilt
table keeps ``AUTOINCREMENT`` and the highest id it ever handed out.

SQL parameters are never logged, nor put in an error's message
(``hide_parameters``): they are what clients sent, often personal data.
``failure_of()`` tells what a failure means by SQLite's extended error code:
the write lock not granted within the busy timeout is a lost race, a full
disk or an unreadable file an unavailable database. SQLite has no statement
or idle-transaction timeout.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

{% if is_async %}
from sqlalchemy import Connection, Engine, Table, event
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
{% else %}
from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.pool import ConnectionPoolEntry
{% endif %}

from ..settings import Settings
from .errors import Failure

# SQLite's (extended) result codes, as Python names them, by what they mean.
_UNIQUE_ERRORS = frozenset({"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"})
_CONTENDED = ("SQLITE_BUSY", "SQLITE_LOCKED")
_UNAVAILABLE = ("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_NOMEM")
# What Alembic names the new table of a rebuild: _alembic_tmp_<table>, cut at 50 characters.
_REBUILT = "_alembic_tmp_"
_BUSY_TIMEOUT = "busy_timeout_ms"
_BUSY_TIMEOUT_SLACK_MS = 50

# When the unit of work taking a connection must have it (time.monotonic()); unit.py sets it.
DEADLINE: ContextVar[float] = ContextVar("DEADLINE")
# The execution options of a read-only unit of work: it begins deferred (see above).
READ_ONLY_OPTIONS: dict[str, Any] = {"writes": False}


class MigrationError(Exception):
    """A run of migrations that would leave a row pointing at no row; it changed nothing."""


def build_engine(settings: Settings) -> {{ "AsyncEngine" if is_async else "Engine" }}:
    """An engine for ``settings.database_url``; the caller disposes of it."""
    engine = {{ "create_async_engine" if is_async else "create_engine" }}(
        settings.database_url,
        echo=settings.db_echo,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        hide_parameters=True,
    )
    _configure_connections(engine{{ ".sync_engine" if is_async else "" }}, settings)
    return engine


def is_unique_violation(error: IntegrityError) -> bool:
    """Whether ``error`` is a unique (or primary key) constraint violation."""
    return error_code(error) in _UNIQUE_ERRORS


def failure_of(error: Exception) -> Failure:
    """What a failed database operation means (see above)."""
    if isinstance(error, PoolTimeoutError):
        return Failure.UNAVAILABLE
    if not isinstance(error, DBAPIError):
        return Failure.INTERNAL
    code = error_code(error) or ""
    if code in _UNIQUE_ERRORS:
        return Failure.DUPLICATE
    if code.startswith(_CONTENDED):
        return Failure.CONTENDED
    if code.startswith(_UNAVAILABLE) or error.connection_invalidated:
        return Failure.UNAVAILABLE
    if not code and isinstance(error, OperationalError | InterfaceError):
        return Failure.UNAVAILABLE  # the driver's own: a database not opened, or lost
    return Failure.INTERNAL


def error_code(error: Exception) -> str | None:
    """SQLite's extended result code of a failed operation, such as ``SQLITE_BUSY``."""
    return getattr(getattr(error, "orig", None), "sqlite_errorname", None)


def time_left(timeout: float) -> float:
    """What is left of the wait of the unit of work beginning now: its one budget
    (``timeout`` outside a unit of work)."""
    deadline = DEADLINE.get(None)
    return timeout if deadline is None else max(deadline - time.monotonic(), 0.001)


def _configure_connections(engine: Engine, settings: Settings) -> None:
    timeout = settings.db_pool_timeout

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={round(timeout * 1000)}")
        record.info[_BUSY_TIMEOUT] = round(timeout * 1000)
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        # The lock may be waited for as long as the unit of work has left; set only when
        # that is not what the connection has (a unit that waited, or the one after it).
        busy_timeout = max(1, round(time_left(timeout) * 1000))
        if abs(connection.info[_BUSY_TIMEOUT] - busy_timeout) > _BUSY_TIMEOUT_SLACK_MS:
            connection.exec_driver_sql(f"PRAGMA busy_timeout={busy_timeout}")
            connection.info[_BUSY_TIMEOUT] = busy_timeout
        writes = connection.get_execution_options().get("writes", True)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")


@contextmanager
def migration_transaction(connection: Connection) -> Iterator[None]:
    """The transaction a run of migrations changes the schema in (see above)."""
    _set_foreign_keys(connection, on=False)
    rebuilt: dict[str, int] = {}  # table -> the highest id it had handed out

    def keep_autoincrement(table: Table, ddl_connection: Connection, **_kw: Any) -> None:
        """Give a rebuild's new table the old one's AUTOINCREMENT, and note its sequence."""
        if not table.name.startswith(_REBUILT):
            return
        rows = ddl_connection.exec_driver_sql(
            "SELECT name, sql, (SELECT seq FROM sqlite_sequence s WHERE s.name = m.name)"
            " FROM sqlite_master m WHERE type = 'table'"
        )
        for name, sql, seq in rows:
            if (_REBUILT + name)[:50] == table.name and "AUTOINCREMENT" in sql.upper():
                table.dialect_kwargs["sqlite_autoincrement"] = True
                rebuilt[name] = max(rebuilt.get(name, 0), seq or 0)

    event.listen(Table, "before_create", keep_autoincrement)
    try:
        with connection.begin():
            yield
            for name, seq in rebuilt.items():
                _keep_sequence(connection, name, seq)
            _check_foreign_keys(connection)
    finally:
        event.remove(Table, "before_create", keep_autoincrement)
        _set_foreign_keys(connection, on=True)


def _set_foreign_keys(connection: Connection, *, on: bool) -> None:
    """SQLite ignores this PRAGMA inside a transaction: it goes to the driver's connection,
    outside SQLAlchemy's transaction."""
    cursor = connection.connection.cursor()
    cursor.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
    cursor.close()


def _keep_sequence(connection: Connection, table: str, seq: int) -> None:
    """After a rebuild, the table's next id is above every id it ever handed out."""
    updated = connection.exec_driver_sql(
        "UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?", (seq, table)
    )
    if updated.rowcount == 0:  # the rebuilt table is empty: it has no row there yet
        connection.exec_driver_sql("INSERT INTO sqlite_sequence VALUES (?, ?)", (table, seq))


def _check_foreign_keys(connection: Connection) -> None:
    orphans = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if orphans:
        tables = sorted({f"{table} -> {parent}" for table, _rowid, parent, _fk in orphans})
        raise MigrationError(
            f"the migrations would leave {len(orphans)} rows pointing at no row"
            f" ({', '.join(tables)}); nothing was changed"
        )
