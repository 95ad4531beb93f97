{% set is_async = cookiecutter.driver == "async" %}
"""The PostgreSQL engine ({{ "asyncpg" if is_async else "psycopg 3" }}).

Behind PgBouncer in transaction mode (``DB_PGBOUNCER=true``) consecutive
transactions of one connection may run on different server connections, so
nothing may rely on a prepared statement surviving its transaction:
{% if is_async %}
asyncpg prepares every statement, so each gets a name of its own and neither
asyncpg nor SQLAlchemy keeps a cache of them (SQLAlchemy's documented recipe).
{% else %}
psycopg 3 prepares a statement once it ran it five times; that is switched off.
{% endif %}
"""

{% if is_async %}
from typing import Any
from uuid import uuid4

from sqlalchemy import event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
{% else %}
import math

from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import IntegrityError
{% endif %}

from ..settings import Settings

# Shown in pg_stat_activity, so operators can tell this service's connections apart.
APPLICATION_NAME = "{{ cookiecutter.project_slug }}"

# The largest value of an INTEGER column, such as a primary key.
MAX_INTEGER = 2**31 - 1

_UNIQUE_VIOLATION = "23505"
{% if is_async %}

_PGBOUNCER_CONNECT_ARGS: dict[str, Any] = {
    "statement_cache_size": 0,
    "prepared_statement_cache_size": 0,
    "prepared_statement_name_func": lambda: f"__asyncpg_{uuid4()}__",
}
{% endif %}


def build_engine(settings: Settings) -> {{ "AsyncEngine" if is_async else "Engine" }}:
    """An engine for ``settings.database_url``; the caller disposes of it."""
{% if is_async %}
    engine = create_async_engine(
{% else %}
    return create_engine(
{% endif %}
        settings.database_url,
        echo=settings.db_echo,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        pool_pre_ping=True,
        connect_args={
{% if is_async %}
            "timeout": settings.db_pool_timeout,
            "server_settings": {"application_name": APPLICATION_NAME},
            **(_PGBOUNCER_CONNECT_ARGS if settings.db_pgbouncer else {}),
{% else %}
            # libpq counts whole seconds and treats less than 2 as 2.
            "connect_timeout": max(2, math.ceil(settings.db_pool_timeout)),
            "application_name": APPLICATION_NAME,
            **({"prepare_threshold": None} if settings.db_pgbouncer else {}),
{% endif %}
        },
    )
{% if is_async %}
    event.listen(engine.sync_engine, "do_connect", _connect)
    return engine
{% endif %}


def is_unique_violation(error: IntegrityError) -> bool:
    """Whether ``error`` is a unique (or primary key) constraint violation."""
    return getattr(error.orig, "sqlstate", None) == _UNIQUE_VIOLATION
{% if is_async %}


def _connect(dialect: Dialect, _record: Any, cargs: Any, cparams: Any) -> Any:
    """Connect as SQLAlchemy would, with connection failures as driver errors.

    asyncpg lets socket errors (refused, unreachable, timed out) through as
    plain ``OSError``; as the driver's ``OperationalError`` they become
    SQLAlchemy's, like every other database failure.
    """
    try:
        return dialect.connect(*cargs, **cparams)
    except OSError as error:
        raise dialect.loaded_dbapi.OperationalError(str(error) or repr(error)) from error
{% endif %}
