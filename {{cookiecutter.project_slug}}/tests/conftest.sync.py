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

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from fastapi.testclient import TestClient
{% if is_pg %}
from sqlalchemy import Connection, create_engine, delete, make_url, text
{% else %}
from sqlalchemy import Connection, delete
{% endif %}

from {{ cookiecutter.package_name }}.items.models import Item
from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.settings import Settings

from .isolation import joining_sessionmaker

PROJECT_DIR = Path(__file__).resolve().parents[1]
{% if is_pg %}
DEFAULT_TEST_DATABASE_URL = "postgresql+psycopg://postgres:postgres@localhost:5432/{{ cookiecutter.project_slug }}_test"


def create_database_if_missing(url: str) -> None:
    database = make_url(url).database
    server_url = make_url(url).set(database="postgres")
    server = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as connection:
            exists = connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": database}
            )
            if not exists:
                connection.execute(text(f'CREATE DATABASE "{database}"'))
    finally:
        server.dispose()
{% endif %}


@pytest.fixture(scope="session")
{% if is_pg %}
def database_url() -> str:
    """The test database, migrated from scratch once per run."""
    url = os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL)
    create_database_if_missing(url)
{% else %}
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The test database, migrated from scratch once per run."""
    default = f"sqlite+pysqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
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
def app(settings: Settings) -> Iterator[FastAPI]:
    """The application with its lifespan running: engine created, then disposed of."""
    app = create_app(settings)
    with TestClient(app):  # entering a TestClient runs the lifespan
        yield app


@pytest.fixture
def connection(app: FastAPI) -> Iterator[Connection]:
    """The test's transaction; every session of the app joins it through a SAVEPOINT."""
    with app.state.engine.connect() as connection:
        transaction = connection.begin()
        app.state.sessionmaker = joining_sessionmaker(connection)
        yield connection
        transaction.rollback()


@pytest.fixture
def client(app: FastAPI, connection: Connection) -> TestClient:
    """A client of the isolated app: nothing it writes outlives the test."""
    return TestClient(app)


@pytest.fixture
def committed_app(app: FastAPI) -> Iterator[FastAPI]:
    """The app as it runs in production, committing for real; the table is emptied after."""
    yield app
    with app.state.engine.begin() as connection:
        connection.execute(delete(Item))


@pytest.fixture
def committed_client(committed_app: FastAPI) -> TestClient:
    """A client of the committing app."""
    return TestClient(committed_app)
