{% set is_pg = cookiecutter.database == "postgresql" %}
{% set is_async = cookiecutter.driver == "async" %}
{% set Conn = "AsyncConnection" if is_async else "Connection" %}
"""Fixtures: a real, migrated test database and one rolled-back transaction per test.

The database comes from ``TEST_DATABASE_URL``{% if is_pg %} (default: a ``{{ cookiecutter.project_slug }}_test``
database on the local server, created if missing){% else %} (default: a fresh SQLite file in
pytest's temporary directory){% endif %}. Its schema is built once per run by the
Alembic migrations, so every run also proves the migrations match the models.

Isolation: a test's requests run in sessions that join one outer transaction
through SAVEPOINTs (``Database.join``). The outer transaction is rolled back
after the test, so even what a request committed is gone. Tests about what a
commit means to *other* connections use ``committed_app``, which commits for
real and empties the tables afterwards.

The tests drive the application through its ASGI interface, as uvicorn does{% if not is_async %}:
the plain ``def`` endpoints run in the threadpool, as they do in production{% endif %}.
"""

{% if is_pg and is_async %}
import asyncio
{% endif %}
import os
{% if is_pg %}
from collections.abc import AsyncIterator, Iterator
{% else %}
from collections.abc import AsyncIterator
{% endif %}

import pytest
from alembic import command
from fastapi import FastAPI
from httpx2 import AsyncClient
{% if is_pg %}
from sqlalchemy import {{ "" if is_async else "Connection, " }}make_url
{% elif not is_async %}
from sqlalchemy import Connection
{% endif %}
{% if is_async %}
from sqlalchemy.ext.asyncio import AsyncConnection
{% endif %}

from {{ cookiecutter.package_name }}.db.unit import Database
{% if not is_pg %}
from {{ cookiecutter.package_name }}.settings import URL_SCHEME, Settings
{% else %}
from {{ cookiecutter.package_name }}.settings import Settings
{% endif %}

{% if cookiecutter.tracing %}
from .spans import spans  # noqa: F401 (a fixture of every test)
{% endif %}
{% if is_pg %}
from .support import (
    DEFAULT_TEST_DATABASE_URL,
    WORKER,
    CuttingProxy,
    alembic_config,
    client_of,
    create_database_if_missing,
    drop_database,
    empty_database,
    empty_tables,
    of_this_worker,
    running_app,
    settings_for,
    through,
)
{% else %}
from .support import (
    alembic_config,
    client_of,
    empty_tables,
    of_this_worker,
    running_app,
    settings_for,
)
{% endif %}

# The suite sets every setting it uses itself: none comes from the developer's
# shell (removed here, before any test runs, with uvicorn's WEB_CONCURRENCY) or
# from .env (see settings_for).
for _variable in [*(name.upper() for name in Settings.model_fields), "WEB_CONCURRENCY"]:
    os.environ.pop(_variable, None)
{% if cookiecutter.tracing %}
# Nor does any span go to the developer's collector (tracing.py reads OTEL_*).
for _variable in [name for name in os.environ if name.startswith("OTEL_")]:
    os.environ.pop(_variable)
{% endif %}


@pytest.fixture(scope="session")
{% if is_pg %}
def database_url() -> Iterator[str]:
    """The test database, migrated from scratch once per run. Under pytest-xdist each
    worker has its own, named after it, and drops it at the end."""
    url = of_this_worker(os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL))
    {{ "asyncio.run(create_database_if_missing(url))" if is_async else "create_database_if_missing(url)" }}
{% else %}
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The test database, migrated from scratch once per run. Under pytest-xdist each
    worker has its own file."""
    default = f"{URL_SCHEME}:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    url = of_this_worker(os.environ.get("TEST_DATABASE_URL", default))
{% endif %}
    config = alembic_config(url)
    command.downgrade(config, "base")
    command.upgrade(config, "head")
{% if is_pg %}
    yield url
    if WORKER is not None:
        {{ "asyncio.run(drop_database(url))" if is_async else "drop_database(url)" }}
{% else %}
    return url
{% endif %}


@pytest.fixture
def settings(database_url: str) -> Settings:
    return settings_for(database_url)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The application with its lifespan running: engine created, then disposed of."""
    async with running_app(settings) as app:
        yield app


@pytest.fixture
async def connection(app: FastAPI) -> AsyncIterator[{{ Conn }}]:
    """The test's transaction; every session of the app joins it through a SAVEPOINT."""
    database: Database = app.state.database
    {{ cookiecutter.__async }}with database.engine.connect() as connection:
        transaction = {{ cookiecutter.__await }}connection.begin()
        database.join(connection)
        yield connection
        {{ cookiecutter.__await }}transaction.rollback()


@pytest.fixture
async def client(app: FastAPI, connection: {{ Conn }}) -> AsyncIterator[AsyncClient]:
    """A client of the isolated app: nothing it writes outlives the test."""
    async with client_of(app) as client:
        yield client


@pytest.fixture
async def committed_app(app: FastAPI) -> AsyncIterator[FastAPI]:
    """The app as it runs in production, committing for real; the tables are emptied after."""
    yield app
    await empty_tables(app.state.database.engine)


@pytest.fixture
async def committed_client(committed_app: FastAPI) -> AsyncIterator[AsyncClient]:
    """A client of the committing app."""
    async with client_of(committed_app) as client:
        yield client
{% if is_pg %}


@pytest.fixture
async def proxy(settings: Settings) -> AsyncIterator[CuttingProxy]:
    """A TCP proxy between the service and its database, to cut a connection with."""
    url = make_url(settings.database_url)
    async with CuttingProxy(url.host or "localhost", url.port or 5432) as proxy:
        yield proxy


@pytest.fixture
async def proxied(settings: Settings, proxy: CuttingProxy) -> AsyncIterator[AsyncClient]:
    """A client of the app, which reaches its database through ``proxy``; committing."""
    url = through(settings.database_url, proxy.port)
    async with running_app(settings, database_url=url) as app, client_of(app) as client:
        yield client
    await empty_database(settings.database_url)
{% endif %}
