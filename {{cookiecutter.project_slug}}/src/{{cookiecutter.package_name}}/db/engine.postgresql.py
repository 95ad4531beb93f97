{% set is_async = cookiecutter.driver == "async" %}
"""The PostgreSQL engine ({{ "asyncpg" if is_async else "psycopg 3" }})."""

{% if not is_async %}
import math

from sqlalchemy import Engine, create_engine
{% endif %}
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
{% if is_async %}
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
{% endif %}

from ..settings import Settings

# Shown in pg_stat_activity, so operators can tell this service's connections apart.
APPLICATION_NAME = "{{ cookiecutter.project_slug }}"

{% if is_async %}
# Errors that mean "the database cannot serve this request now" (a 503).
# asyncpg lets socket errors (refused, reset, timed out) through unwrapped.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError, OSError)
{% else %}
# Errors that mean "the database cannot serve this request now" (a 503).
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError)
{% endif %}

_UNIQUE_VIOLATION = "23505"


def build_engine(settings: Settings) -> {{ "AsyncEngine" if is_async else "Engine" }}:
    """An engine for ``settings.database_url``; the caller disposes of it."""
    return {{ "create_async_engine" if is_async else "create_engine" }}(
        settings.database_url,
        echo=settings.db_echo,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        pool_pre_ping=True,
{% if is_async %}
        connect_args={
            "timeout": settings.db_pool_timeout,
            "server_settings": {"application_name": APPLICATION_NAME},
        },
{% else %}
        connect_args={
            # libpq counts whole seconds and treats less than 2 as 2.
            "connect_timeout": max(2, math.ceil(settings.db_pool_timeout)),
            "application_name": APPLICATION_NAME,
        },
{% endif %}
    )


def is_unique_violation(error: IntegrityError) -> bool:
    """Whether ``error`` is a unique (or primary key) constraint violation."""
    return getattr(error.orig, "sqlstate", None) == _UNIQUE_VIOLATION
