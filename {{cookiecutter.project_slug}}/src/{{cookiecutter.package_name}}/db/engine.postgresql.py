{% set is_async = cookiecutter.driver == "async" %}
"""The PostgreSQL engine ({{ "asyncpg" if is_async else "psycopg 3" }})."""

{% if is_async %}
from typing import Any

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
{% else %}
            # libpq counts whole seconds and treats less than 2 as 2.
            "connect_timeout": max(2, math.ceil(settings.db_pool_timeout)),
            "application_name": APPLICATION_NAME,
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
