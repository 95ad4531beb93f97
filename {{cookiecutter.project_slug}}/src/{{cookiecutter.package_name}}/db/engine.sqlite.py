{% set is_async = cookiecutter.driver == "async" %}
"""The SQLite engine ({{ "aiosqlite" if is_async else "the standard library's sqlite3" }}).

SQLite needs two things on every connection: foreign keys switched on, and the
driver's own transaction handling switched off so that SQLAlchemy's BEGIN,
SAVEPOINT and ROLLBACK mean what they say (without it a SAVEPOINT is not
honoured and a rolled-back test can leave rows behind).
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
    _configure_connections(engine{{ ".sync_engine" if is_async else "" }})
    return engine


def is_unique_violation(error: IntegrityError) -> bool:
    """Whether ``error`` is a unique (or primary key) constraint violation."""
    return getattr(error.orig, "sqlite_errorname", None) in _UNIQUE_ERRORS


def _configure_connections(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")  # readers don't block the writer
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN")
