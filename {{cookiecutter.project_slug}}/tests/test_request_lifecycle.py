{% set is_async = cookiecutter.driver == "async" %}
{% set is_pg = cookiecutter.database == "postgresql" %}
{% set Engine = "AsyncEngine" if is_async else "Engine" %}
"""The edges of a request's life: after its response, when it is cancelled, when
connections run out, and what its session work can see.

- A background task writes through a session of its own (``open_session``).
- The request's session refuses use after the request ended, with an error,
  instead of quietly checking out another connection.
- An exception after a streaming response started keeps what was committed and
  leaks no connection.
- A request cancelled midway (a client that went away) rolls back, leaks no
  connection and leaves none idle in a transaction; its session is never used
  from two places at once, and the pool serves the next requests.
- With every connection taken, a request gets a 503 within ``DB_POOL_TIMEOUT``.
- Session work sees the request's context variables.
- Readiness needs no thread of the endpoints' threadpool.
- Only database errors are "database unavailable".
"""

import asyncio
import logging
{{ "import socket" if is_pg else "import sqlite3" }}
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any

import anyio
import pytest
from fastapi import BackgroundTasks, FastAPI
from fastapi.responses import StreamingResponse
from httpx2 import AsyncClient
{% if is_async %}
from sqlalchemy import Connection, event, select
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.ext.asyncio import AsyncEngine
{% else %}
from sqlalchemy import Connection, Engine, event, select
from sqlalchemy.exc import InvalidRequestError
{% endif %}
from sqlalchemy.orm import Session

from {{ cookiecutter.package_name }}.db.unit import Database
from {{ cookiecutter.package_name }}.items.models import Item, ItemEvent
from {{ cookiecutter.package_name }}.items.schemas import ItemHistory
from {{ cookiecutter.package_name }}.session import SessionDep
from {{ cookiecutter.package_name }}.settings import Settings

{% if is_pg %}
from .support import client_of, connection_states, names_seen_by, running_app
{% else %}
from .support import client_of, names_seen_by, running_app
{% endif %}

request_id: ContextVar[str] = ContextVar("request_id", default="none")


class Hold:
    """Keeps an endpoint waiting, inside its transaction, until the test lets it go."""

    def __init__(self) -> None:
{% if is_async %}
        self.entered = asyncio.Event()
        self.released = asyncio.Event()
{% else %}
        self.entered = threading.Event()
        self.released = threading.Event()
{% endif %}

    async def wait_until_entered(self) -> None:
{% if is_async %}
        with anyio.fail_after(10):
            await self.entered.wait()
{% else %}
        assert await anyio.to_thread.run_sync(self.entered.wait, 10)
{% endif %}

    {{ cookiecutter.__async }}def until_released(self) -> None:
        """Called by the held endpoint: it waits here."""
        self.entered.set()
        {{ "await self.released.wait()" if is_async else "self.released.wait(10)" }}

    def release(self) -> None:
        self.released.set()


def install_test_routes(app: FastAPI, hold: Hold) -> None:
    late_errors: list[BaseException] = []
    app.state.late_errors = late_errors

    @app.post("/test/hold", status_code=201)
    {{ cookiecutter.__async }}def held(session: SessionDep) -> None:
        session.add(Item(name="held"))
        {{ cookiecutter.__await }}session.flush()
        {{ cookiecutter.__await }}hold.until_released()

    @app.get("/test/hold-reading")
    {{ cookiecutter.__async }}def held_reading(session: SessionDep) -> None:
        {{ cookiecutter.__await }}session.execute(select(Item.id))
        {{ cookiecutter.__await }}hold.until_released()

    @app.post("/test/use-session-in-background")
    {{ cookiecutter.__async }}def use_session_in_background(session: SessionDep, background: BackgroundTasks) -> None:
        {{ cookiecutter.__async }}def late_use() -> None:
            try:
                {{ cookiecutter.__await }}session.get(Item, 1)
            except InvalidRequestError as error:
                late_errors.append(error)

        background.add_task(late_use)

    @app.get("/test/use-session-in-stream")
    {{ cookiecutter.__async }}def use_session_in_stream(session: SessionDep) -> StreamingResponse:
        {{ cookiecutter.__async }}def body() -> {{ "AsyncIterator" if is_async else "Iterator" }}[bytes]:
            try:
                {{ cookiecutter.__await }}session.get(Item, 1)
            except InvalidRequestError as error:
                yield type(error).__name__.encode()

        return StreamingResponse(body())

    @app.post("/test/write-then-stream-then-crash")
    {{ cookiecutter.__async }}def write_then_stream_then_crash(session: SessionDep) -> StreamingResponse:
        session.add(Item(name="streamed"))
        {{ cookiecutter.__await }}session.flush()

        {{ cookiecutter.__async }}def body() -> {{ "AsyncIterator" if is_async else "Iterator" }}[bytes]:
            yield b"first chunk"
            raise RuntimeError("The stream broke.")

        return StreamingResponse(body())

    @app.post("/test/answer-what-was-not-loaded", status_code=201, response_model=ItemHistory)
    {{ cookiecutter.__async }}def answer_what_was_not_loaded(session: SessionDep) -> Item:
        item = Item(name="not loaded")
        session.add(item)
        {{ cookiecutter.__await }}session.flush()
        return item  # its events were never loaded

    @app.get("/test/missing-file")
    {{ cookiecutter.__async }}def missing_file() -> None:
        raise FileNotFoundError("/no/such/file")


@pytest.fixture
def hold() -> Iterator[Hold]:
    hold = Hold()
    yield hold
    hold.release()


@pytest.fixture(autouse=True)
def test_routes(app: FastAPI, hold: Hold) -> None:
    install_test_routes(app, hold)


async def test_a_change_and_its_record_are_stored_together(
    committed_client: AsyncClient, committed_app: FastAPI
) -> None:
    created = await committed_client.post("/items", json={"name": "Widget"})
    taken = await committed_client.post("/items", json={"name": "Gadget"})
    item_url = f"/items/{created.json()['id']}"

    assert (await committed_client.patch(item_url, json={"name": "Gadget"})).status_code == 409
    assert (await committed_client.patch(item_url, json={})).status_code == 200  # no change
    assert (await committed_client.patch(item_url, json={"name": "Gizmo"})).status_code == 200
    assert (await committed_client.delete(item_url)).status_code == 204
    assert (await committed_client.delete(f"/items/{taken.json()['id']}")).status_code == 204

    # Read back through the service's own open_session(), as a script would.
    database: Database = committed_app.state.database
    query = select(ItemEvent.item_id, ItemEvent.action).order_by(ItemEvent.id)
    async with database.open_session(writes=False) as session:
        events = {{ "await session.execute(" if is_async else "await database.run(session, Session.execute, " }}query)
    assert [tuple(event) for event in events] == [
        (created.json()["id"], "updated"),
        (created.json()["id"], "deleted"),
        (taken.json()["id"], "deleted"),
    ]


async def test_an_answer_that_reads_what_was_not_loaded_is_a_500_naming_it(
    committed_client: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    response = await committed_client.post("/test/answer-what-was-not-loaded")

    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error."}
    [logged] = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert "events" in logged.getMessage()
    assert "selectinload" in logged.getMessage()  # the remedy
    assert logged.exc_info is None  # one line, no traceback
    assert (await committed_client.get("/items")).json()["items"] == []  # nothing stored


async def test_the_request_session_refuses_use_after_the_request_ended(
    committed_client: AsyncClient, committed_app: FastAPI
) -> None:
    in_background = await committed_client.post("/test/use-session-in-background")
    in_stream = await committed_client.get("/test/use-session-in-stream")

    assert in_background.status_code == 200
    [error] = committed_app.state.late_errors
    assert "closed" in str(error)
    assert in_stream.status_code == 200
    assert in_stream.text == "InvalidRequestError"
    assert committed_app.state.database.engine.pool.checkedout() == 0


async def test_an_exception_after_the_response_started_keeps_the_commit(
    committed_app: FastAPI,
) -> None:
    async with client_of(committed_app, raise_app_exceptions=False) as client:
        response = await client.post("/test/write-then-stream-then-crash")

    # The status was sent before the body broke; the client sees a short body.
    assert response.status_code == 200
    assert response.content == b"first chunk"
    assert await names_seen_by(committed_app.state.database.engine) == ["streamed"]
    assert committed_app.state.database.engine.pool.checkedout() == 0


def current_user() -> tuple[int, object]:
    """Who runs this code: a thread, and the event loop's task when it runs there."""
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    return threading.get_ident(), task


class GuardedSession(Session):
    """A session that records any call starting while another thread or task is inside one."""

    overlaps: list[str]
    _guard = threading.Lock()

    @contextmanager
    def _alone(self, name: str) -> Iterator[None]:
        user = current_user()
        with self._guard:
            holder, depth = self.__dict__.get("_holder", (None, 0))
            if holder not in (None, user):
                GuardedSession.overlaps.append(name)
            self.__dict__["_holder"] = (user, depth + 1)
        try:
            yield
        finally:
            with self._guard:
                holder, depth = self.__dict__["_holder"]
                self.__dict__["_holder"] = (holder if depth > 1 else None, depth - 1)

    def connection(self, *args: Any, **kwargs: Any) -> Connection:
        with self._alone("connection"):
            return super().connection(*args, **kwargs)

    def flush(self, *args: Any, **kwargs: Any) -> None:
        with self._alone("flush"):
            super().flush(*args, **kwargs)

    def commit(self) -> None:
        with self._alone("commit"):
            super().commit()

    def rollback(self) -> None:
        with self._alone("rollback"):
            super().rollback()

    def close(self) -> None:
        with self._alone("close"):
            super().close()


@pytest.fixture
def guarded(app: FastAPI) -> list[str]:
    """Every session of the app records overlapping calls into the returned list."""
    GuardedSession.overlaps = []
{% if is_async %}
    app.state.database.sessionmaker.configure(sync_session_class=GuardedSession)
{% else %}
    app.state.database.sessionmaker.class_ = GuardedSession
{% endif %}
    return GuardedSession.overlaps


async def test_a_request_cancelled_midway_gives_its_connection_back(
    committed_app: FastAPI, settings: Settings, hold: Hold, guarded: list[str]
) -> None:
    """As when a client goes away and the server cancels its request."""
    engine = committed_app.state.database.engine
    async with client_of(committed_app) as client:
        async with anyio.create_task_group() as requests:
            requests.start_soon(client.post, "/test/hold")
            await hold.wait_until_entered()
            requests.cancel_scope.cancel()
            hold.release()

        assert engine.pool.checkedout() == 0
{% if not is_async and cookiecutter.session_strategy == "dependency" %}
        # A plain def endpoint cannot be interrupted: it ran to its end, and FastAPI
        # shields a dependency's exit from cancellation, so its work was committed, whole.
        assert await names_seen_by(engine) == ["held"]
{% else %}
        assert await names_seen_by(engine) == []
{% endif %}
{% if is_pg %}
        assert "idle in transaction" not in await connection_states(engine)
{% endif %}
        responses = await asyncio.gather(*[client.get("/items") for _ in range(50)])

    assert [response.status_code for response in responses] == [200] * 50
    assert guarded == []
    assert engine.pool.checkedout() == 0


@asynccontextmanager
async def one_connection_held(
    settings: Settings, hold: Hold, *, pool_timeout: float
) -> AsyncIterator[tuple[FastAPI, AsyncClient]]:
    """An app with one connection, waited for at most ``pool_timeout`` seconds, which a
    reading request holds until ``hold`` is released; and a client of the app."""
    update = {"db_pool_size": 1, "db_max_overflow": 0, "db_pool_timeout": pool_timeout}
    async with (
        running_app(settings, **update) as app,
        client_of(app) as client,
        anyio.create_task_group() as requests,
    ):
        install_test_routes(app, hold)
        requests.start_soon(client.get, "/test/hold-reading")
        await hold.wait_until_entered()
        try:
            yield app, client
        finally:
            hold.release()


async def test_an_exhausted_pool_answers_503_within_the_pool_timeout(
    settings: Settings, hold: Hold
) -> None:
    async with one_connection_held(settings, hold, pool_timeout=1) as (app, client):
        started = time.monotonic()
        responses = await asyncio.gather(*[client.get("/items") for _ in range(5)])
        waited = time.monotonic() - started
        assert app.state.database.engine.pool.checkedout() == 1  # the held one, still

    assert [response.status_code for response in responses] == [503] * 5
    assert responses[0].json() == {"detail": "The database is unavailable, try again later."}
    assert waited < 1 + 1


{% if is_pg %}
@contextmanager
def connections_made_anew_to_a_silent_server(
    engine: {{ Engine }}, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Every connection given back to ``engine``'s pool is closed, and every new one goes
    to a port that accepts and never answers."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes each handshake; nothing ever answers
        host, port = silent.getsockname()
        dialect = engine.dialect
        connect = dialect.connect

        def to_the_silent_server(*cargs: Any, **cparams: Any) -> Any:
            return connect(*cargs, **{**cparams, "host": host, "port": port})

        def close(_dbapi_connection: Any, record: Any) -> None:
            record.invalidate()

        monkeypatch.setattr(dialect, "connect", to_the_silent_server)
        event.listen(engine{{ ".sync_engine" if is_async else "" }}, "checkin", close)
        try:
            yield
        finally:
            event.remove(engine{{ ".sync_engine" if is_async else "" }}, "checkin", close)
{% else %}
@contextmanager
def write_lock_held_elsewhere(engine: {{ Engine }}) -> Iterator[None]:
    """Another process's transaction holds the write lock of ``engine``'s database."""
    other = sqlite3.connect(str(engine.url.database), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()
{% endif %}


async def test_the_pool_timeout_bounds_the_whole_wait_{{ "a_new_connection_included" if is_pg else "the_write_lock_included" }}(
    settings: Settings, hold: Hold{{ ", monkeypatch: pytest.MonkeyPatch" if is_pg }}
) -> None:
    """A request that waited in line for a third of ``DB_POOL_TIMEOUT`` has two thirds
    left for the rest: {{ "a new connection, here to a server that never answers" if is_pg else "the write lock, here held by another process" }}."""
    async with one_connection_held(settings, hold, pool_timeout=3) as (app, client):
        started = time.monotonic()
        creating = asyncio.ensure_future(client.post("/items", json={"name": "late"}))
        await asyncio.sleep(1)
        engine = app.state.database.engine
{% if is_pg %}
        with connections_made_anew_to_a_silent_server(engine, monkeypatch):
{% else %}
        with write_lock_held_elsewhere(engine):
{% endif %}
            hold.release()
            response = await creating
        waited = time.monotonic() - started

    assert response.status_code == 503
    assert waited < 3 + 0.5


async def test_session_work_sees_the_request_context(app: FastAPI, client: AsyncClient) -> None:
    """Context variables (request ids, tracing spans) reach wherever the session works."""
    seen: list[str] = []

    def record(*_: object) -> None:
        seen.append(request_id.get())

    async def with_request_id() -> int:
        request_id.set("request-1")
        response = await client.post("/items", json={"name": "Widget"})
        return response.status_code

    event.listen(Session, "after_begin", record)
    event.listen(Session, "after_commit", record)
    try:
        status_code = await asyncio.create_task(with_request_id())
    finally:
        event.remove(Session, "after_begin", record)
        event.remove(Session, "after_commit", record)

    assert status_code == 201
    assert seen == ["request-1", "request-1"]


async def test_readiness_needs_no_thread_of_the_endpoint_threadpool(client: AsyncClient) -> None:
    threadpool = anyio.to_thread.current_default_thread_limiter()
    borrowers = [object() for _ in range(int(threadpool.total_tokens))]
    for borrower in borrowers:
        threadpool.acquire_on_behalf_of_nowait(borrower)
    try:
        with anyio.fail_after(5):
            response = await client.get("/health/ready")
    finally:
        for borrower in borrowers:
            threadpool.release_on_behalf_of(borrower)

    assert response.status_code == 200


async def test_an_unrelated_os_error_is_not_database_unavailable(app: FastAPI) -> None:
    async with client_of(app, raise_app_exceptions=False) as client:
        response = await client.get("/test/missing-file")

    assert response.status_code == 500
    assert "retry-after" not in response.headers
    assert "database" not in response.text.lower()
