{% set is_async = cookiecutter.driver == "async" %}
{% set Session = "AsyncSession" if is_async else "Session" %}
"""Real database failures, each caused for real, each answered as ``errors.py`` promises.

- unavailable (a connection cut, the server out of connections, a read-only
  server): 503 with ``Retry-After``;
- a transaction that lost a race (deadlock, serialization failure, a lock not
  granted in time) and a statement past ``DB_STATEMENT_TIMEOUT``: 503 with
  ``Retry-After``, never a 500;
- a commit whose answer was lost may have been stored: its retry meets it;
- nothing the client sent reaches the log.

A connection is cut by a small TCP proxy between the service and PostgreSQL
(``support.CuttingProxy``), right after the service sent a given statement.
"""

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient
from sqlalchemy import make_url, text
from sqlalchemy.exc import DBAPIError
{% if is_async %}
from sqlalchemy.ext.asyncio import AsyncSession
{% endif %}
from sqlalchemy.orm import Session

from {{ cookiecutter.package_name }}.db.engine import (
    APPLICATION_NAME,
    build_engine,
    failure_of,
)
from {{ cookiecutter.package_name }}.db.errors import Failure
from {{ cookiecutter.package_name }}.db.unit import Database
from {{ cookiecutter.package_name }}.errors import database_error_response
from {{ cookiecutter.package_name }}.settings import Settings

from .support import (
    TERMINATE_CONNECTIONS,
    WORKER,
    CuttingProxy,
    ask_the_database,
    client_of,
    connection_states,
    empty_tables,
    items_listed,
    running_app,
    settings_for,
)

PRIVATE = "private description"


def assert_try_again(status: int, headers: Any, seconds: str = "5") -> None:
    assert status == 503
    assert headers["retry-after"] == seconds


async def test_a_connection_cut_after_a_first_statement_is_a_503_that_changed_nothing(
    proxied: AsyncClient, proxy: CuttingProxy, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    created = await proxied.post("/items", json={"name": "Widget"})
    assert created.status_code == 201
    path = f"/items/{created.json()['id']}"
    # Not the unit's first statement: the item was read, and locked, before it.
    proxy.cut_after(b"UPDATE items")
    with caplog.at_level(logging.WARNING):
        cut = await proxied.patch(path, json={"description": PRIVATE})

    assert proxy.cuts == 1
    assert_try_again(cut.status_code, cut.headers)
    assert (await proxied.get(path)).json() == created.json()
    assert PRIVATE not in caplog.text
    assert "Database unavailable" in caplog.text
    engine = build_engine(settings)
    try:
        assert "idle in transaction" not in await connection_states(engine)
    finally:
        {{ cookiecutter.__await }}engine.dispose()


@pytest.mark.parametrize(
    ("method", "path", "marker", "status"),
    [("GET", "/items", b"SELECT", 200), ("POST", "/items", b"INSERT INTO items", 201)],
)
async def test_a_first_statement_cut_runs_again_on_a_new_connection(
    proxied: AsyncClient, proxy: CuttingProxy, method: str, path: str, marker: bytes, status: int
) -> None:
    await proxied.get("/health/ready")  # a connection in the pool
    proxy.cut_after(marker)
    response = await proxied.request(method, path, json={"name": "Widget"})

    assert proxy.cuts == 1
    assert response.status_code == status
    assert await items_listed(proxied) == (status == 201)


async def test_the_retry_of_a_lost_commit_meets_its_own_write(
    proxied: AsyncClient, proxy: CuttingProxy
) -> None:
    proxy.cut_after(b"COMMIT")
    cut = await proxied.post("/items", json={"name": "Widget"})
    retried = await proxied.post("/items", json={"name": "Widget"})

    assert_try_again(cut.status_code, cut.headers)
    assert retried.status_code == 409
    assert await items_listed(proxied) == 1


def terminate_unseen(database_url: str) -> None:
    """Terminate the service's connections while this thread's event loop waits: the
    server's goodbye then waits on their sockets, unread by the driver, as it does in a
    busy service (a loop that ran meanwhile would have read it)."""
    terminate = ask_the_database(database_url, TERMINATE_CONNECTIONS, name=APPLICATION_NAME)
    terminating = threading.Thread(target=asyncio.run, args=(terminate,))
    terminating.start()
    terminating.join()
    time.sleep(0.5)


async def test_the_next_request_after_the_server_dropped_the_connections_succeeds(
    committed_client: AsyncClient, settings: Settings
) -> None:
    for _ in range(3):
        assert (await committed_client.get("/items")).status_code == 200
    terminate_unseen(settings.database_url)

    assert (await committed_client.get("/items")).status_code == 200
    assert (await committed_client.post("/items", json={"name": "After"})).status_code == 201


async def test_a_pooled_connection_the_server_closed_is_replaced_before_it_is_lent(
    committed_app: FastAPI, settings: Settings
) -> None:
    engine = committed_app.state.database.engine
    {{ cookiecutter.__async }}with engine.connect() as connection:
        {{ cookiecutter.__await }}connection.execute(text("SELECT 1"))
    assert engine.pool.checkedin() == 1
    terminate_unseen(settings.database_url)

    # Straight to the pool: nothing reads the socket before the connection is lent.
    {{ cookiecutter.__async }}with engine.connect() as connection:
        assert {{ cookiecutter.__await }}connection.scalar(text("SELECT 1")) == 1


@pytest.fixture
async def limited_role(settings: Settings) -> AsyncIterator[Callable[[str], Awaitable[str]]]:
    """Make a login role of this test, with the service's privileges, changed by ``ALTER
    ROLE ... <change>``; the database URL that logs in as it."""
    role = f"{APPLICATION_NAME}_limited_{WORKER or 'main'}"

    async def make(change: str) -> str:
        await run_sql(
            settings,
            f'CREATE ROLE "{role}" LOGIN',
            f'ALTER ROLE "{role}" {change}',
            f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"',
            f'GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO "{role}"',
        )
        return make_url(settings.database_url).set(username=role, password=None).render_as_string()

    yield make
    await run_sql(settings, f'DROP OWNED BY "{role}"', f'DROP ROLE "{role}"')


async def run_sql(settings: Settings, *statements: str) -> None:
    engine = build_engine(settings)
    try:
        {{ cookiecutter.__async }}with engine.begin() as connection:
            for statement in statements:
                {{ cookiecutter.__await }}connection.execute(text(statement))
    finally:
        {{ cookiecutter.__await }}engine.dispose()


async def test_a_server_out_of_connections_is_a_503(
    settings: Settings, limited_role: Callable[[str], Awaitable[str]]
) -> None:
    url = await limited_role("CONNECTION LIMIT 1")
    holder = build_engine(settings_for(url))
    try:
        {{ cookiecutter.__async }}with holder.connect() as held:
            {{ cookiecutter.__await }}held.execute(text("SELECT 1"))
            async with running_app(settings, database_url=url) as app, client_of(app) as client:
                response = await client.get("/items")
    finally:
        {{ cookiecutter.__await }}holder.dispose()

    assert_try_again(response.status_code, response.headers)
    assert response.json() == {"detail": "The database is unavailable, try again later."}


async def test_a_read_only_server_answers_reads_and_refuses_writes_with_a_503(
    settings: Settings, limited_role: Callable[[str], Awaitable[str]]
) -> None:
    url = await limited_role("SET default_transaction_read_only = on")
    async with running_app(settings, database_url=url) as app, client_of(app) as client:
        read = await client.get("/items")
        write = await client.post("/items", json={"name": "Widget"})

    assert read.status_code == 200
    assert_try_again(write.status_code, write.headers)


async def test_a_statement_past_the_statement_timeout_is_a_503(settings: Settings) -> None:
    async with running_app(settings, db_statement_timeout=0.3) as app, client_of(app) as client:
        try:
            created = (await client.post("/items", json={"name": "Locked"})).json()
            database: Database = app.state.database
            async with database.open_session() as holder:
                await database.run(holder, lock_item, created["id"])
                started = time.monotonic()
                deleting = asyncio.ensure_future(client.delete(f"/items/{created['id']}"))
                await asyncio.wait([deleting], timeout=3)
                waited = time.monotonic() - started
            response = await deleting  # one still waiting gets the row now
        finally:
            await empty_tables(app.state.database.engine)

    assert_try_again(response.status_code, response.headers)
    assert response.json() == {"detail": "The database took too long to answer; try again later."}
    assert 0.3 <= waited < 2


async def test_a_transaction_left_idle_past_the_idle_timeout_is_ended_by_the_server(
    settings: Settings,
) -> None:
    update = {"db_idle_in_transaction_timeout": 0.2}
    async with running_app(settings, **update) as app, client_of(app) as client:
        error = await idle_in_a_transaction(app.state.database, seconds=0.6)
        after = await client.get("/items")

    assert failure_of(error) is Failure.UNAVAILABLE
    assert after.status_code == 200  # on a new connection


async def idle_in_a_transaction(database: Database, seconds: float) -> DBAPIError:
    """What a unit of work that sat idle in its transaction for ``seconds`` gets."""
    try:
        async with database.open_session() as session:
            await database.run(session, execute, "SELECT 1")
            await asyncio.sleep(seconds)
            await database.run(session, execute, "SELECT 1")
    except DBAPIError as error:
        return error
    raise AssertionError("the server kept the idle transaction")


def lock_item(session: Session, item_id: int) -> None:
    session.execute(text("SELECT 1 FROM items WHERE id = :id FOR UPDATE"), {"id": item_id})


def execute(session: Session, sql: str) -> None:
    session.execute(text(sql))


LOCK_A = "UPDATE items SET version = version WHERE name = 'a'"
LOCK_B = "UPDATE items SET version = version WHERE name = 'b'"
Units = tuple[{{ Session }}, {{ Session }}]


async def deadlock(database: Database, units: Units) -> None:
    """Each locks a row, then asks for the other's."""
    first, second = units
    await database.run(first, execute, LOCK_A)
    await database.run(second, execute, LOCK_B)
    both = [
        asyncio.ensure_future(database.run(first, execute, LOCK_B)),
        asyncio.ensure_future(database.run(second, execute, LOCK_A)),
    ]
    await asyncio.wait(both, return_when=asyncio.FIRST_EXCEPTION)
    # The server chose one to fail; once it rolls back, the other gets its row.
    for waiting, session in zip(both, units, strict=True):
        if waiting.done() and waiting.exception() is not None:
            await database.run(session, Session.rollback)
    await asyncio.wait(both)
    for waiting in both:
        waiting.result()


async def serialization_failure(database: Database, units: Units) -> None:
    """The first reads a snapshot, the second changes the row, the first then too."""
    first, second = units
    await database.run(first, execute, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    await database.run(first, execute, "SELECT version FROM items WHERE name = 'a'")
    await database.run(second, execute, LOCK_A)
    await database.run(second, execute, "COMMIT")  # as another client's transaction would
    await database.run(first, execute, LOCK_A)


async def lock_not_granted(database: Database, units: Units) -> None:
    """The second holds the row; the first waits for it only 50 ms."""
    first, second = units
    await database.run(second, execute, LOCK_A)
    await database.run(first, execute, "SET LOCAL lock_timeout = '50ms'")
    await database.run(first, execute, LOCK_A)


@pytest.mark.parametrize("race", [deadlock, serialization_failure, lock_not_granted])
async def test_a_transaction_that_lost_a_race_is_a_503_to_retry_soon(
    committed_app: FastAPI, committed_client: AsyncClient, race: Any
) -> None:
    for name in ("a", "b"):
        assert (await committed_client.post("/items", json={"name": name})).status_code == 201
    database: Database = committed_app.state.database
    first = await database.begin(name="first")
    second = await database.begin(name="second")
    try:
        with pytest.raises(DBAPIError) as raised:
            await race(database, (first, second))
    finally:
        await database.end(first, commit=False)
        await database.end(second, commit=False)

    assert failure_of(raised.value) is Failure.CONTENDED
    response = database_error_response(raised.value)
    assert_try_again(response.status_code, response.headers, seconds="1")


async def failed_statement(settings: Settings, sql: str, **params: object) -> DBAPIError:
    engine = build_engine(settings)
    try:
        {{ cookiecutter.__async }}with engine.connect() as connection:
            {{ cookiecutter.__await }}connection.execute(text(sql), params)
    except DBAPIError as error:
        return error
    finally:
        {{ cookiecutter.__await }}engine.dispose()
    raise AssertionError(f"{sql} succeeded")


async def test_sql_parameters_never_reach_an_error_message(settings: Settings) -> None:
    error = await failed_statement(settings, "SELECT 1 / :zero", zero=0, unused=PRIVATE)

    assert PRIVATE not in str(error)
    assert "parameters hidden" in str(error)
