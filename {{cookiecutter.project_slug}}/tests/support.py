{% set is_pg = cookiecutter.database == "postgresql" %}
{% set is_async = cookiecutter.driver == "async" %}
{% set Engine = "AsyncEngine" if is_async else "Engine" %}
"""What the tests share: settings, apps and clients, the database as others see it,
and the service served in a process of its own. Test modules import helpers from
here, never from ``conftest`` or from each other."""

{% if is_pg %}
import asyncio
{% endif %}
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any{{ ", Self" if is_pg }}

import httpx2
from alembic.config import Config
from fastapi import FastAPI
from httpx2 import ASGITransport, AsyncClient
{% if is_async %}
{% if is_pg %}
from sqlalchemy import TextClause, delete, event, make_url, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
{% else %}
from sqlalchemy import TextClause, delete, event, make_url, select
from sqlalchemy.ext.asyncio import AsyncEngine
{% endif %}
{% elif is_pg %}
from sqlalchemy import (
    Connection,
    Engine,
    TextClause,
    create_engine,
    delete,
    event,
    make_url,
    select,
    text,
)
{% else %}
from sqlalchemy import Engine, TextClause, delete, event, make_url, select
{% endif %}

from {{ cookiecutter.package_name }}.db.base import Base
{% if is_pg %}
from {{ cookiecutter.package_name }}.db.engine import (
    APPLICATION_NAME,
    READ_ONLY_OPTIONS,
    build_engine,
)
{% else %}
from {{ cookiecutter.package_name }}.db.engine import (
    READ_ONLY_OPTIONS,
    build_engine,
)
{% endif %}
from {{ cookiecutter.package_name }}.items.models import Item
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
# pytest-xdist runs the suite in worker processes, gw0, gw1 ...; each has a database of its own.
WORKER = os.environ.get("PYTEST_XDIST_WORKER")
{% if is_pg %}
DEFAULT_TEST_DATABASE_URL = f"{URL_SCHEME}://postgres:postgres@localhost:5432/{DATABASE_NAME}_test"
# Nothing listens on port 1.
UNREACHABLE_URL = f"{URL_SCHEME}://postgres@127.0.0.1:1/nowhere"

# The service's connections to the test database, but the one asking.
_OF_THE_SERVICE = (
    " FROM pg_stat_activity WHERE datname = current_database()"
    " AND application_name = :name AND pid <> pg_backend_pid()"
)
CONNECTION_STATES = text(f"SELECT state{_OF_THE_SERVICE}")
CONNECTION_COUNT = text(f"SELECT count(*){_OF_THE_SERVICE}")
TERMINATE_CONNECTIONS = text(f"SELECT count(pg_terminate_backend(pid)){_OF_THE_SERVICE}")
{% else %}
# A file in a directory that does not exist cannot be opened.
UNREACHABLE_URL = f"{URL_SCHEME}:////nonexistent-directory/nowhere.db"
{% endif %}


def settings_for(database_url: str, **values: Any) -> Settings:
    """Settings of a test: ``values`` and the defaults, never a value from ``.env``."""
    return Settings(_env_file=None, database_url=database_url, **values)


def alembic_config(database_url: str) -> Config:
    """Alembic's configuration, as ``alembic`` reads it, for the database at ``database_url``."""
    config = Config(PROJECT_DIR / "alembic.ini")
    config.attributes["settings"] = settings_for(database_url)
    config.attributes["configure_logger"] = False
    return config


@asynccontextmanager
async def running_app(settings: Settings, **changes: Any) -> AsyncIterator[FastAPI]:
    """An application for ``settings`` with ``changes``, its lifespan running:
    engine created, then disposed of."""
    app = create_app(settings.model_copy(update=changes))
    async with app.router.lifespan_context(app):
        yield app


def client_of(app: FastAPI, *, raise_app_exceptions: bool = True) -> AsyncClient:
    """A client that calls ``app`` through its ASGI interface, as uvicorn does."""
    transport = ASGITransport(app, raise_app_exceptions=raise_app_exceptions)
    return AsyncClient(transport=transport, base_url="http://test")


async def create_items(client: AsyncClient, prefix: str, count: int) -> None:
    """Create ``count`` items, one request each (``<prefix>-0``, ...); every one is a 201."""
    for n in range(count):
        response = await client.post("/items", json={"name": f"{prefix}-{n}"})
        assert response.status_code == 201, response.text


def of_this_worker(url: str) -> str:
    """``url``, or under pytest-xdist the database of this worker: its name suffixed."""
    if WORKER is None:
        return url
    parsed = make_url(url)
{% if is_pg %}
    parsed = parsed.set(database=f"{parsed.database}_{WORKER}")
{% else %}
    path = Path(str(parsed.database))
    parsed = parsed.set(database=str(path.with_name(f"{path.stem}-{WORKER}{path.suffix}")))
{% endif %}
    return parsed.render_as_string(hide_password=False)
{% if is_pg %}


{{ cookiecutter.__async }}def create_database_if_missing(url: str) -> None:
    database = make_url(url).database
    {{ cookiecutter.__async }}with _server(url) as connection:
        exists = {{ cookiecutter.__await }}connection.scalar(
            text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": database}
        )
        if not exists:
            {{ cookiecutter.__await }}connection.execute(text(f'CREATE DATABASE "{database}"'))


{{ cookiecutter.__async }}def drop_database(url: str) -> None:
    """Drop the database of ``url``, closing whatever is still connected to it."""
    {{ cookiecutter.__async }}with _server(url) as connection:
        database = make_url(url).database
        {{ cookiecutter.__await }}connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))


@{{ "asynccontextmanager" if is_async else "contextmanager" }}
{{ cookiecutter.__async }}def _server(url: str) -> {{ "AsyncIterator[AsyncConnection]" if is_async else "Iterator[Connection]" }}:
    """A connection to the server of ``url``, outside any database's transaction."""
    server_url = make_url(url).set(database="postgres")
    server = {{ "create_async_engine" if is_async else "create_engine" }}(server_url, isolation_level="AUTOCOMMIT")
    try:
        {{ cookiecutter.__async }}with server.connect() as connection:
            yield connection
    finally:
        {{ cookiecutter.__await }}server.dispose()
{% endif %}


# What a request asks of the database; BEGIN, SAVEPOINT, COMMIT and the like are not counted.
QUERIES = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")


@contextmanager
def statements_sent(app: FastAPI) -> Iterator[list[str]]:
    """The queries ``app`` sends to its database in the block, in order: a test holds a
    request to a number of them (a page costs the same whatever its size; no N+1)."""
    sent: list[str] = []
    engine = app.state.database.engine{{ ".sync_engine" if is_async }}

    def record(_connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith(QUERIES):
            sent.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def items_listed(client: AsyncClient) -> int:
    """How many items the first page of ``GET /items`` lists."""
    listed = await client.get("/items")
    assert listed.status_code == 200
    return len(listed.json()["items"])


async def ask_the_database(database_url: str, query: TextClause, **params: object) -> int:
    """``query`` read on a connection of its own, outside the application: its number."""
    engine = build_engine(settings_for(database_url))
    try:
        {{ cookiecutter.__async }}with engine.execution_options(**READ_ONLY_OPTIONS).connect() as connection:
            answer = {{ cookiecutter.__await }}connection.scalar(query, params)
    finally:
        {{ cookiecutter.__await }}engine.dispose()
    return int(answer or 0)


async def names_seen_by(engine: {{ Engine }}) -> list[str]:
    """The item names, in order, as a fresh connection of ``engine`` sees them."""
    {{ cookiecutter.__async }}with engine.connect() as connection:
        {{ cookiecutter.__await }}connection.execution_options(writes=False)  # reads: no write lock
        return list({{ cookiecutter.__await }}connection.scalars(select(Item.name).order_by(Item.name)))
{% if is_pg %}


async def connection_states(engine: {{ Engine }}) -> list[str]:
    """The states of the service's other connections, as the server sees them."""
    {{ cookiecutter.__async }}with engine.connect() as connection:
        states = {{ cookiecutter.__await }}connection.scalars(CONNECTION_STATES, {"name": APPLICATION_NAME})
        return list(states)


async def drop_the_services_connections(database_url: str) -> None:
    """Terminate them, and wait until they are gone (pg_terminate_backend only asks)."""
    assert await ask_the_database(database_url, TERMINATE_CONNECTIONS, name=APPLICATION_NAME) >= 1
    for _ in range(100):
        if await ask_the_database(database_url, CONNECTION_COUNT, name=APPLICATION_NAME) == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the server kept the service's connections")
{% endif %}


async def empty_tables(engine: {{ Engine }}) -> None:
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


{% if is_pg %}
class TCPProxy:
    """A TCP proxy on a free port of 127.0.0.1 (``port``) within ``async with``: each
    connection is the ``forward()`` of a subclass."""

    port = 0

    async def __aenter__(self) -> Self:
        self.server = await asyncio.start_server(self.forward, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.server.close()

    async def forward(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        raise NotImplementedError


class CuttingProxy(TCPProxy):
    """Forwards TCP connections to PostgreSQL; ``cut_after(marker)`` makes it cut the
    connection whose client sends ``marker`` next: the server gets what was sent, the
    client never hears back."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.marker: bytes | None = None
        self.cuts = 0

    def cut_after(self, marker: bytes) -> None:
        self.marker = marker

    async def forward(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        server_in, server_out = await asyncio.open_connection(*self.target)

        async def pump(
            source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, watch: bool
        ) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
                    if watch and self.marker is not None and self.marker in data:
                        self.marker = None
                        self.cuts += 1
                        client_out.transport.abort()  # the client's end: reset
                        break  # the server's end is closed after what it was sent
            except OSError:
                pass
            finally:
                client_out.transport.abort()
                server_out.close()

        await asyncio.gather(
            pump(client_in, server_out, watch=True), pump(server_in, client_out, watch=False)
        )


def through(url: str, port: int) -> str:
    """``url``, reaching its server through the proxy on ``port``."""
    return make_url(url).set(host="127.0.0.1", port=port).render_as_string(hide_password=False)


{% endif %}
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_serving(base_url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert server.poll() is None, "the server exited while starting"
        try:
            httpx2.get(f"{base_url}/health", timeout=1)
        except httpx2.TransportError:
            time.sleep(0.1)
        else:
            return
    raise AssertionError("the server did not start within 30 s")


def wait_until_listening(port: int, process: subprocess.Popen[bytes], log: Path, name: str) -> None:
    """Until ``process`` (``name``, its output in ``log``) accepts connections on ``port``."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            time.sleep(0.05)
        else:
            return
    raise AssertionError(f"{name} did not listen within 5 s:\n{log.read_text()}")


def start_server(
    database_url: str, log: Path, *arguments: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """The service as its container runs it (``python -m {{ cookiecutter.package_name }}``, with
    ``arguments``) on a free port, its output in ``log`` (a file: a pipe nobody reads would
    stall the server once full)."""
    port = free_port()
    with log.open("wb") as output:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "{{ cookiecutter.package_name }}",
                "--port",
                str(port),
                *arguments,
            ],
            cwd=log.parent,  # not the project's: its .env is the developer's, not the test's
            env={
                **os.environ,
                **(env or {}),
                "DATABASE_URL": database_url,
            },
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    wait_until_serving(f"http://127.0.0.1:{port}", server)
    return server, port
