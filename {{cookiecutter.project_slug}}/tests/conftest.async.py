{% set is_pg = cookiecutter.database == "postgresql" %}
"""Fixtures: a real, migrated test database and one rolled-back transaction per test.

The database comes from ``TEST_DATABASE_URL``{% if is_pg %} (default: a ``{{ cookiecutter.project_slug }}_test``
database on the local server, created if missing){% else %} (default: a fresh SQLite file in
pytest's temporary directory){% endif %}. Its schema is built once per run by the
Alembic migrations, so every run also proves the migrations match the models.

Isolation: a test's requests run in sessions that join one outer transaction
through SAVEPOINTs (``join_transaction_mode="create_savepoint"``). The outer
transaction is rolled back after the test, so even what a request committed is
gone. Tests about what a commit means to *other* connections use
``committed_app``, which commits for real and empties the table afterwards.
"""

{% if is_pg %}
import asyncio
{% endif %}
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from httpx2 import ASGITransport, AsyncClient
{% if is_pg %}
from sqlalchemy import delete, make_url, text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
{% else %}
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncConnection
{% endif %}

from {{ cookiecutter.package_name }}.items.models import Item
from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.settings import Settings

from .isolation import joining_sessionmaker

PROJECT_DIR = Path(__file__).resolve().parents[1]
{% if is_pg %}
DEFAULT_TEST_DATABASE_URL = "postgresql+asyncpg://postgres:postgres@localhost:5432/{{ cookiecutter.project_slug }}_test"


async def create_database_if_missing(url: str) -> None:
    database = make_url(url).database
    server_url = make_url(url).set(database="postgres")
    server = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with server.connect() as connection:
            exists = await connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": database}
            )
            if not exists:
                await connection.execute(text(f'CREATE DATABASE "{database}"'))
    finally:
        await server.dispose()
{% endif %}


@pytest.fixture(scope="session")
{% if is_pg %}
def database_url() -> str:
    """The test database, migrated from scratch once per run."""
    url = os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)
    asyncio.run(create_database_if_missing(url))
{% else %}
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The test database, migrated from scratch once per run."""
    default = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    url = os.environ.get("TEST_DATABASE_URL", default)
{% endif %}
    config = Config(PROJECT_DIR / "alembic.ini")
    config.attributes["database_url"] = url
    config.attributes["configure_logger"] = False
    command.downgrade(config, "base")
    command.upgrade(config, "head")
    return url


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The application with its lifespan running: engine created, then disposed of."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def connection(app: FastAPI) -> AsyncIterator[AsyncConnection]:
    """The test's transaction; every session of the app joins it through a SAVEPOINT."""
    async with app.state.engine.connect() as connection:
        transaction = await connection.begin()
        app.state.sessionmaker = joining_sessionmaker(connection)
        yield connection
        await transaction.rollback()


@pytest.fixture
async def client(app: FastAPI, connection: AsyncConnection) -> AsyncIterator[AsyncClient]:
    """A client of the isolated app: nothing it writes outlives the test."""
    async with AsyncClient(transport=ASGITransport(app), base_url="http://test") as client:
        yield client


@pytest.fixture
async def committed_app(app: FastAPI) -> AsyncIterator[FastAPI]:
    """The app as it runs in production, committing for real; the table is emptied after."""
    yield app
    async with app.state.engine.begin() as connection:
        await connection.execute(delete(Item))


@pytest.fixture
async def committed_client(committed_app: FastAPI) -> AsyncIterator[AsyncClient]:
    """A client of the committing app."""
    transport = ASGITransport(committed_app)
    async with AsyncClient(transport=transport, base_url="http://test") as client:
        yield client
