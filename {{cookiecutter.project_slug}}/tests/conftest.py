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
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from httpx2 import ASGITransport, AsyncClient
{% if is_async %}
{% if is_pg %}
from sqlalchemy import TextClause, delete, make_url, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
{% else %}
from sqlalchemy import TextClause, delete
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
{% endif %}
{% elif is_pg %}
from sqlalchemy import Connection, Engine, TextClause, create_engine, delete, make_url, text
{% else %}
from sqlalchemy import Connection, Engine, TextClause, delete
{% endif %}

from {{ cookiecutter.package_name }}.db.base import Base
from {{ cookiecutter.package_name }}.db.engine import build_engine
from {{ cookiecutter.package_name }}.db.unit import Database
from {{ cookiecutter.package_name }}.main import create_app
{% if is_pg %}
from {{ cookiecutter.package_name }}.settings import (
    DATABASE_NAME,
    URL_SCHEME,
    Settings,
)
{% else %}
from {{ cookiecutter.package_name }}.settings import URL_SCHEME, Settings
{% endif %}

PROJECT_DIR = Path(__file__).resolve().parents[1]
# The suite sets every setting it uses itself: none comes from the developer's
# shell (removed here, before any test runs) or from .env (see settings_for).
for _setting in Settings.model_fields:
    os.environ.pop(_setting.upper(), None)
{% if is_pg %}
DEFAULT_TEST_DATABASE_URL = f"{URL_SCHEME}://postgres:postgres@localhost:5432/{DATABASE_NAME}_test"


{{ cookiecutter.__async }}def create_database_if_missing(url: str) -> None:
    database = make_url(url).database
    server_url = make_url(url).set(database="postgres")
    server = {{ "create_async_engine" if is_async else "create_engine" }}(server_url, isolation_level="AUTOCOMMIT")
    try:
        {{ cookiecutter.__async }}with server.connect() as connection:
            exists = {{ cookiecutter.__await }}connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": database}
            )
            if not exists:
                {{ cookiecutter.__await }}connection.execute(text(f'CREATE DATABASE "{database}"'))
    finally:
        {{ cookiecutter.__await }}server.dispose()
{% endif %}


@pytest.fixture(scope="session")
{% if is_pg %}
def database_url() -> str:
    """The test database, migrated from scratch once per run."""
    url = os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)
    {{ "asyncio.run(create_database_if_missing(url))" if is_async else "create_database_if_missing(url)" }}
{% else %}
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The test database, migrated from scratch once per run."""
    default = f"{URL_SCHEME}:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    url = os.environ.get("TEST_DATABASE_URL", default)
{% endif %}
    config = alembic_config(url)
    command.downgrade(config, "base")
    command.upgrade(config, "head")
    return url


def alembic_config(database_url: str) -> Config:
    """Alembic's configuration, as ``alembic`` reads it, for the database at ``database_url``."""
    config = Config(PROJECT_DIR / "alembic.ini")
    config.attributes["settings"] = settings_for(database_url)
    config.attributes["configure_logger"] = False
    return config


def settings_for(database_url: str, **values: Any) -> Settings:
    """Settings of a test: ``values`` and the defaults, never a value from ``.env``."""
    return Settings(_env_file=None, database_url=database_url, **values)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return settings_for(database_url)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The application with its lifespan running: engine created, then disposed of."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
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


def client_of(app: FastAPI, *, raise_app_exceptions: bool = True) -> AsyncClient:
    transport = ASGITransport(app, raise_app_exceptions=raise_app_exceptions)
    return AsyncClient(transport=transport, base_url="http://test")


@pytest.fixture
async def client(app: FastAPI, connection: {{ Conn }}) -> AsyncIterator[AsyncClient]:
    """A client of the isolated app: nothing it writes outlives the test."""
    async with client_of(app) as client:
        yield client


async def ask_the_database(database_url: str, query: TextClause, **params: object) -> int:
    """``query`` on a connection of its own, outside the application: its number."""
    engine = build_engine(settings_for(database_url))
    try:
        {{ cookiecutter.__async }}with engine.connect() as connection:
            answer = {{ cookiecutter.__await }}connection.scalar(query, params)
    finally:
        {{ cookiecutter.__await }}engine.dispose()
    return int(answer or 0)


async def empty_tables(engine: {{ "AsyncEngine" if is_async else "Engine" }}) -> None:
    """Delete every row: what a test committed for real."""
    {{ cookiecutter.__async }}with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            {{ cookiecutter.__await }}connection.execute(delete(table))


async def empty_database(database_url: str) -> None:
    """Delete every row of the database at ``database_url``, from outside the application."""
    engine = build_engine(settings_for(database_url))
    try:
        await empty_tables(engine)
    finally:
        {{ cookiecutter.__await }}engine.dispose()


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
