{% set is_async = cookiecutter.driver == "async" %}
{% set is_pg = cookiecutter.database == "postgresql" %}
{% set Engine = "AsyncEngine" if is_async else "Engine" %}
{% set Conn = "AsyncConnection" if is_async else "Connection" %}
"""What a request's transaction means, whichever way the session is managed.

- Committed *before* the response starts: a client holding a 2xx can read its
  write back at once, from any connection.
- Rolled back on an error status or an exception: nothing a failed request
  wrote survives.
- A commit that fails is an error response (409 / 500), never a 2xx, and the
  request's background tasks do not run.
- A rollback that fails still ends in the request's own error response.
- A GET, HEAD or OPTIONS request is a read-only unit of work: what it tries
  to write is refused, and nothing of it is stored.
- An endpoint's own commit is refused: a unit commits once, as it ends.
{% if is_pg %}
- A read-only unit of work runs each statement as a transaction of its own
  (autocommit), a writing one all of them in one transaction.
{% endif %}
"""

from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import pytest
from fastapi import BackgroundTasks, FastAPI, HTTPException
from fastapi.responses import JSONResponse
from httpx2 import AsyncClient
{% if is_async %}
from sqlalchemy import insert, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import Session
{% else %}
from sqlalchemy import Connection, Engine, insert, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
{% endif %}

from {{ cookiecutter.package_name }}.db.engine import build_engine
from {{ cookiecutter.package_name }}.db.unit import Database
from {{ cookiecutter.package_name }}.items.models import Item, ItemEvent
from {{ cookiecutter.package_name }}.session import (
    DatabaseDep,
    ReadSessionDep,
    SessionDep,
    WriteSessionDep,
)
from {{ cookiecutter.package_name }}.settings import Settings

from .support import client_of, names_seen_by

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def events_seen_by(engine: {{ Engine }}) -> list[str]:
    """The logged item events, as a fresh connection of ``engine`` sees them."""
    {{ cookiecutter.__async }}with engine.connect() as connection:
        {{ cookiecutter.__await }}connection.execution_options(writes=False)  # reads: no write lock
        return list({{ cookiecutter.__await }}connection.scalars(select(ItemEvent.action)))


async def log_in_background(database: Database, action: str) -> None:
    """A background task's write: through a session of its own, after the response."""
    async with database.open_session() as session:
        session.add(ItemEvent(item_id=0, action=action))


class ProbeAtResponseStart:
    """Wraps an app and reads the database the moment its response starts."""

    def __init__(self, app: FastAPI, engine: {{ Engine }}) -> None:
        self.app = app
        self.engine = engine
        self.seen: list[list[str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def probing_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.seen.append(await names_seen_by(self.engine))
            await send(message)

        await self.app(scope, receive, probing_send)


@pytest.fixture
async def reader(settings: Settings) -> AsyncIterator[{{ Engine }}]:
    """An engine of its own: it sees only what was committed."""
    engine = build_engine(settings)
    yield engine
    {{ cookiecutter.__await }}engine.dispose()


@pytest.fixture(autouse=True)
def failing_routes(app: FastAPI) -> None:
    """Endpoints that write and then fail, in the ways a real endpoint can."""

    @app.post("/test/write-then-raise/{status_code}")
    {{ cookiecutter.__async }}def write_then_raise(status_code: int, session: SessionDep) -> None:
        session.add(Item(name="doomed"))
        {{ cookiecutter.__await }}session.flush()
        raise HTTPException(status_code, "Failed on purpose.")

    @app.post("/test/write-then-crash")
    {{ cookiecutter.__async }}def write_then_crash(session: SessionDep) -> None:
        session.add(Item(name="doomed"))
        {{ cookiecutter.__await }}session.flush()
        raise RuntimeError("A bug.")

    @app.post("/test/write-then-return/{status_code}")
    {{ cookiecutter.__async }}def write_then_return(status_code: int, session: SessionDep) -> JSONResponse:
        session.add(Item(name="returned"))
        {{ cookiecutter.__await }}session.flush()
        return JSONResponse({"detail": "Returned, not raised."}, status_code=status_code)

    # No flush in these two: the INSERT runs inside the commit, which fails.
    @app.post("/test/insert-at-commit/{name}", status_code=201)
    {{ cookiecutter.__async }}def insert_at_commit(
        name: str, session: SessionDep, database: DatabaseDep, background: BackgroundTasks
    ) -> None:
        session.add(Item(name=name))
        background.add_task(log_in_background, database, "background task ran")

    @app.post("/test/insert-null-at-commit", status_code=201)
    {{ cookiecutter.__async }}def insert_null_at_commit(session: SessionDep) -> None:
        session.add(Item(name=None))  # violates NOT NULL

    @app.get("/test/flush-in-a-read")
    {{ cookiecutter.__async }}def flush_in_a_read(session: SessionDep) -> None:
        session.add(Item(name="read-only?"))
        {{ cookiecutter.__await }}session.flush()

    @app.get("/test/insert-in-a-read")
    {{ cookiecutter.__async }}def insert_in_a_read(session: SessionDep) -> None:
        {{ cookiecutter.__await }}session.execute(insert(Item).values(name="read-only?"))

    @app.get("/test/a-read-that-says-it-writes")
    {{ cookiecutter.__async }}def a_read_that_says_it_writes(session: WriteSessionDep) -> None:
        session.add(Item(name="visited"))
        {{ cookiecutter.__await }}session.flush()

    @app.post("/test/a-write-that-says-it-only-reads")
    {{ cookiecutter.__async }}def a_write_that_says_it_only_reads(session: ReadSessionDep) -> None:
        session.add(Item(name="read-only?"))
        {{ cookiecutter.__await }}session.flush()

    @app.post("/test/commit-then-fail")
    {{ cookiecutter.__async }}def commit_then_fail(session: SessionDep) -> None:
        session.add(Item(name="half-written?"))
        {{ cookiecutter.__await }}session.commit()  # as tutorials do: refused
        raise RuntimeError("The rest of the work fails.")
{% if is_pg %}

    @app.api_route("/test/transactions", methods=["GET", "POST"])
    {{ cookiecutter.__async }}def transactions(session: SessionDep) -> list[int]:
        """The ids of the transactions that ran two statements of this request."""
        query = text("SELECT txid_current()")
        return [{{ cookiecutter.__await }}session.scalar(query), {{ cookiecutter.__await }}session.scalar(query)]
{% endif %}

    @app.patch("/test/change-a-stale-item/{item_id}")
    {{ cookiecutter.__async }}def change_a_stale_item(item_id: int, session: SessionDep) -> None:
        item = {{ cookiecutter.__await }}session.get(Item, item_id)
        assert item is not None
        # Someone else's change lands between our read and our write.
        bump = text("UPDATE items SET version = version + 1 WHERE id = :id")
        {{ cookiecutter.__await }}session.execute(bump, {"id": item_id})
        item.description = "ours"
        {{ cookiecutter.__await }}session.flush()


async def test_commit_is_visible_before_the_response_starts(
    committed_app: FastAPI,
    reader: {{ Engine }},
) -> None:
    probe = ProbeAtResponseStart(committed_app, reader)
    async with client_of(probe) as client:  # type: ignore[arg-type]
        response = await client.post("/items", json={"name": "Widget"})

    assert response.status_code == 201
    assert probe.seen == [["Widget"]]


async def test_read_your_writes_from_another_connection(
    committed_client: AsyncClient,
    reader: {{ Engine }},
) -> None:
    created = await committed_client.post("/items", json={"name": "Widget"})
    assert created.status_code == 201
    assert await names_seen_by(reader) == ["Widget"]

    item_url = f"/items/{created.json()['id']}"
    renamed = await committed_client.patch(item_url, json={"name": "Gadget"})
    assert renamed.status_code == 200
    assert await names_seen_by(reader) == ["Gadget"]


@pytest.mark.parametrize("status_code", [400, 404, 409, 422, 503])
async def test_error_status_rolls_back(
    committed_client: AsyncClient,
    reader: {{ Engine }},
    status_code: int,
) -> None:
    response = await committed_client.post(f"/test/write-then-raise/{status_code}")

    assert response.status_code == status_code
    assert await names_seen_by(reader) == []


async def test_exception_rolls_back(committed_app: FastAPI, reader: {{ Engine }}) -> None:
    async with client_of(committed_app, raise_app_exceptions=False) as client:
        response = await client.post("/test/write-then-crash")

    assert response.status_code == 500
    assert await names_seen_by(reader) == []


async def test_a_returned_error_response_{{ "rolls_back" if cookiecutter.session_strategy == "middleware" else "is_committed" }}(
    committed_client: AsyncClient,
    reader: {{ Engine }},
) -> None:
    """The one difference between the strategies: only the middleware sees the status
    of a response that an endpoint returns instead of raising."""
    response = await committed_client.post("/test/write-then-return/400")

    assert response.status_code == 400
    assert response.json() == {"detail": "Returned, not raised."}
{% if cookiecutter.session_strategy == "middleware" %}
    assert await names_seen_by(reader) == []
{% else %}
    assert await names_seen_by(reader) == ["returned"]
{% endif %}


async def test_failed_commit_is_a_conflict_and_runs_no_background_task(
    committed_client: AsyncClient,
    reader: {{ Engine }},
) -> None:
    created = await committed_client.post("/items", json={"name": "Widget"})
    assert created.status_code == 201

    response = await committed_client.post("/test/insert-at-commit/Widget")

    assert response.status_code == 409
    assert response.json() == {"detail": "The request conflicts with stored data."}
    assert await names_seen_by(reader) == ["Widget"]
    assert await events_seen_by(reader) == []


async def test_a_commit_that_succeeds_runs_the_background_task(
    committed_client: AsyncClient,
    reader: {{ Engine }},
) -> None:
    response = await committed_client.post("/test/insert-at-commit/Widget")

    assert response.status_code == 201
    assert await names_seen_by(reader) == ["Widget"]
    assert await events_seen_by(reader) == ["background task ran"]


async def test_failed_commit_is_a_server_error_not_a_success(
    client: AsyncClient, connection: {{ Conn }}
) -> None:
    response = await client.post("/test/insert-null-at-commit")

    assert response.status_code == 500
    assert response.json() == {"detail": "Internal database error."}
    assert list({{ cookiecutter.__await }}connection.scalars(select(Item.name))) == []


@pytest.fixture
def failing_rollback(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every rollback fails, as it does when the connection broke mid-request
    (the unit of work ends through the ORM's own session, whichever the driver)."""
    attempts: list[str] = []

    def rollback(self: Session) -> None:
        attempts.append("rollback")
        raise OperationalError("ROLLBACK", None, ConnectionError("connection lost"))

    monkeypatch.setattr(Session, "rollback", rollback)
    return attempts


@pytest.mark.parametrize(
    ("path", "status_code", "body"),
    [
        ("/test/write-then-raise/404", 404, {"detail": "Failed on purpose."}),
        ("/test/insert-null-at-commit", 500, {"detail": "Internal database error."}),
    ],
    ids=["error-status", "failed-commit"],
)
async def test_a_failed_rollback_still_answers_the_request_error(
    committed_app: FastAPI,
    reader: {{ Engine }},
    failing_rollback: list[str],
    path: str,
    status_code: int,
    body: dict[str, str],
) -> None:
    async with client_of(committed_app) as client:
        response = await client.post(path)

    assert failing_rollback == ["rollback"]
    assert response.status_code == status_code
    assert response.json() == body
    assert committed_app.state.database.engine.pool.checkedout() == 0
    assert await names_seen_by(reader) == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/test/flush-in-a-read"),
        ("GET", "/test/insert-in-a-read"),
        ("POST", "/test/a-write-that-says-it-only-reads"),
    ],
)
async def test_a_read_only_request_cannot_write(
    committed_app: FastAPI,
    reader: {{ Engine }},
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
) -> None:
    async with client_of(committed_app) as client:
        response = await client.request(method, path)

    assert response.status_code == 500
    assert response.json() == {"detail": "Internal database error."}
    assert await names_seen_by(reader) == []
    # The log says which route it was, and how it may write.
    [logged] = [record for record in caplog.records if record.exc_info]
    assert logged.exc_info is not None
    assert f"{method} {path} is read-only" in str(logged.exc_info[1])
    assert "WriteSessionDep" in str(logged.exc_info[1])


async def test_an_endpoint_cannot_commit_half_its_work(
    committed_app: FastAPI, reader: {{ Engine }}, caplog: pytest.LogCaptureFixture
) -> None:
    """A unit commits once, as it ends: an endpoint's own commit is refused, so what it
    wrote before its failure is rolled back with the rest."""
    async with client_of(committed_app) as client:
        response = await client.post("/test/commit-then-fail")

    assert response.status_code == 500
    assert await names_seen_by(reader) == []
    assert "commits when it ends: routes and repositories do not commit" in caplog.text


async def test_a_get_that_says_it_writes_is_committed_like_any_write(
    committed_app: FastAPI, reader: {{ Engine }}
) -> None:
    async with client_of(committed_app) as client:
        response = await client.get("/test/a-read-that-says-it-writes")

    assert response.status_code == 200
    assert await names_seen_by(reader) == ["visited"]
{% if is_pg %}


async def test_a_read_only_request_runs_each_statement_in_a_transaction_of_its_own(
    committed_app: FastAPI,
) -> None:
    async with client_of(committed_app) as client:
        read = (await client.get("/test/transactions")).json()
        write = (await client.post("/test/transactions")).json()

    assert read[0] != read[1]  # autocommit: no BEGIN and COMMIT round trips
    assert write[0] == write[1]
{% endif %}


async def test_a_stale_version_at_flush_is_a_failed_precondition(client: AsyncClient) -> None:
    item = (await client.post("/items", json={"name": "Widget"})).json()

    response = await client.patch(f"/test/change-a-stale-item/{item['id']}")

    assert response.status_code == 412
    assert response.json() == {"detail": "It changed since it was read; read it again."}
    assert (await client.get(f"/items/{item['id']}")).json()["description"] is None


async def test_isolation_hides_request_commits(client: AsyncClient, reader: {{ Engine }}) -> None:
    """The recipe of the ``connection`` fixture: a commit inside it only releases a SAVEPOINT."""
    created = await client.post("/items", json={"name": "Widget"})
    listed = await client.get("/items")

    assert created.status_code == 201
    assert len(listed.json()["items"]) == 1
    assert await names_seen_by(reader) == []
