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
- a busy timeout of ``DB_POOL_TIMEOUT``: a writer waits its turn for the lock;
- a unit of work that may write begins with ``BEGIN IMMEDIATE``, taking the
  write lock up front. A deferred transaction that read first could not wait
  for it later: SQLite would refuse it at once with "database is locked",
  whatever the busy timeout. Read-only work (``writes=False``, such as GET
  requests) begins deferred and runs alongside the writer.
"""

from typing import Any

{% if is_async %}
from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
{% else %}
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import IntegrityError
{% endif %}

from ..settings import Settings

# The largest value of an INTEGER column, such as a primary key.
MAX_INTEGER = 2**63 - 1

_UNIQUE_ERRORS = frozenset({"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"})


def build_engine(settings: Settings) -> {{ "AsyncEngine" if is_async else "Engine" }}:
    """An engine for ``settings.database_url``; the caller disposes of it."""
    engine = {{ "create_async_engine" if is_async else "create_engine" }}(
        settings.database_url,
        echo=settings.db_echo,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
    )
    _configure_connections(engine{{ ".sync_engine" if is_async else "" }}, settings)
    return engine


def read_only_options(_settings: Settings) -> dict[str, Any]:
    """The execution options of a read-only unit of work: it begins deferred (see above)."""
    return {"writes": False}


def is_unique_violation(error: IntegrityError) -> bool:
    """Whether ``error`` is a unique (or primary key) constraint violation."""
    return getattr(error.orig, "sqlite_errorname", None) in _UNIQUE_ERRORS


def _configure_connections(engine: Engine, settings: Settings) -> None:
    busy_timeout_ms = round(settings.db_pool_timeout * 1000)

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        writes = connection.get_execution_options().get("writes", True)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")
