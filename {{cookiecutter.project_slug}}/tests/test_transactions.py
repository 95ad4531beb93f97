{% set is_async = cookiecutter.driver == "async" %}
{% set aw = cookiecutter.__await %}
{% set Client = "AsyncClient" if is_async else "TestClient" %}
{% set Engine = "AsyncEngine" if is_async else "Engine" %}
{% set Conn = "AsyncConnection" if is_async else "Connection" %}
"""What a request's transaction means, whichever way the session is managed.

- Committed *before* the response starts: a client holding a 2xx can read its
  write back at once, from any connection.
- Rolled back on an error status or an exception: nothing a failed request
  wrote survives.
- A commit that fails is an error response (409 / 500), never a 2xx.
"""

{% if is_async %}
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
{% else %}
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
{% endif %}
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException
{% if is_async %}
from httpx2 import ASGITransport, AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
{% else %}
from fastapi.concurrency import run_in_threadpool
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, select
{% endif %}

from {{ cookiecutter.package_name }}.db.engine import build_engine
from {{ cookiecutter.package_name }}.db.session import SessionDep
from {{ cookiecutter.package_name }}.items.models import Item
from {{ cookiecutter.package_name }}.settings import Settings

from .isolation import joining_sessionmaker

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


{{ cookiecutter.__async }}def names_seen_by(engine: {{ Engine }}) -> list[str]:
    """The item names as a fresh connection of ``engine`` sees them."""
    {{ "async " if is_async }}with engine.connect() as connection:
        return list({{ aw }}connection.scalars(select(Item.name).order_by(Item.name)))


class ProbeAtResponseStart:
    """Wraps an app and reads the database the moment its response starts."""

    def __init__(self, app: FastAPI, engine: {{ Engine }}) -> None:
        self.app = app
        self.engine = engine
        self.seen: list[list[str]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def probing_send(message: Message) -> None:
            if message["type"] == "http.response.start":
{% if is_async %}
                self.seen.append(await names_seen_by(self.engine))
{% else %}
                self.seen.append(await run_in_threadpool(names_seen_by, self.engine))
{% endif %}
            await send(message)

        await self.app(scope, receive, probing_send)


@pytest.fixture
{{ cookiecutter.__async }}def reader(settings: Settings) -> {{ "AsyncIterator" if is_async else "Iterator" }}[{{ Engine }}]:
    """An engine of its own: it sees only what was committed."""
    engine = build_engine(settings)
    yield engine
    {{ aw }}engine.dispose()


@pytest.fixture(autouse=True)
def failing_routes(app: FastAPI) -> None:
    """Endpoints that write and then fail, in the ways a real endpoint can."""

    @app.post("/test/write-then-raise/{status_code}")
    {{ cookiecutter.__async }}def write_then_raise(status_code: int, session: SessionDep) -> None:
        session.add(Item(name="doomed"))
        {{ aw }}session.flush()
        raise HTTPException(status_code, "Failed on purpose.")

    @app.post("/test/write-then-crash")
    {{ cookiecutter.__async }}def write_then_crash(session: SessionDep) -> None:
        session.add(Item(name="doomed"))
        {{ aw }}session.flush()
        raise RuntimeError("A bug.")

    # No flush in these two: the INSERT runs inside the commit.
    @app.post("/test/insert-at-commit/{name}", status_code=201)
    {{ cookiecutter.__async }}def insert_at_commit(name: str, session: SessionDep) -> None:
        session.add(Item(name=name))

    @app.post("/test/insert-null-at-commit", status_code=201)
    {{ cookiecutter.__async }}def insert_null_at_commit(session: SessionDep) -> None:
        session.add(Item(name=None))  # violates NOT NULL


{{ cookiecutter.__async }}def test_commit_is_visible_before_the_response_starts(
    committed_app: FastAPI,
    reader: {{ Engine }},
) -> None:
    probe = ProbeAtResponseStart(committed_app, reader)
{% if is_async %}
    async with AsyncClient(transport=ASGITransport(probe), base_url="http://test") as client:
        response = await client.post("/items", json={"name": "Widget"})
{% else %}
    response = TestClient(probe).post("/items", json={"name": "Widget"})
{% endif %}

    assert response.status_code == 201
    assert probe.seen == [["Widget"]]


{{ cookiecutter.__async }}def test_read_your_writes_from_another_connection(
    committed_client: {{ Client }},
    reader: {{ Engine }},
) -> None:
    created = {{ aw }}committed_client.post("/items", json={"name": "Widget"})
    assert created.status_code == 201
    assert {{ aw }}names_seen_by(reader) == ["Widget"]

    item_url = f"/items/{created.json()['id']}"
    renamed = {{ aw }}committed_client.patch(item_url, json={"name": "Gadget"})
    assert renamed.status_code == 200
    assert {{ aw }}names_seen_by(reader) == ["Gadget"]


@pytest.mark.parametrize("status_code", [400, 404, 409, 422, 503])
{{ cookiecutter.__async }}def test_error_status_rolls_back(
    committed_client: {{ Client }},
    reader: {{ Engine }},
    status_code: int,
) -> None:
    response = {{ aw }}committed_client.post(f"/test/write-then-raise/{status_code}")

    assert response.status_code == status_code
    assert {{ aw }}names_seen_by(reader) == []


{{ cookiecutter.__async }}def test_exception_rolls_back(committed_app: FastAPI, reader: {{ Engine }}) -> None:
{% if is_async %}
    transport = ASGITransport(committed_app, raise_app_exceptions=False)
    async with AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/test/write-then-crash")
{% else %}
    client = TestClient(committed_app, raise_server_exceptions=False)
    response = client.post("/test/write-then-crash")
{% endif %}

    assert response.status_code == 500
    assert {{ aw }}names_seen_by(reader) == []


{{ cookiecutter.__async }}def test_failed_commit_is_a_conflict_not_a_success(
    client: {{ Client }},
    connection: {{ Conn }},
) -> None:
    created = {{ aw }}client.post("/items", json={"name": "Widget"})
    assert created.status_code == 201

    response = {{ aw }}client.post("/test/insert-at-commit/Widget")

    assert response.status_code == 409
    assert response.json() == {"detail": "The request conflicts with stored data."}
    assert list({{ aw }}connection.scalars(select(Item.name))) == ["Widget"]


{{ cookiecutter.__async }}def test_failed_commit_is_a_server_error_not_a_success(client: {{ Client }}) -> None:
    response = {{ aw }}client.post("/test/insert-null-at-commit")

    assert response.status_code == 500
    assert response.json() == {"detail": "Internal database error."}


{{ cookiecutter.__async }}def test_isolation_undoes_what_requests_committed(app: FastAPI, reader: {{ Engine }}) -> None:
    """The recipe of the ``connection`` fixture: a commit inside it only releases a SAVEPOINT."""
    {{ "async " if is_async }}with app.state.engine.connect() as connection:
        transaction = {{ aw }}connection.begin()
        app.state.sessionmaker = joining_sessionmaker(connection)
{% if is_async %}
        async with AsyncClient(transport=ASGITransport(app), base_url="http://test") as client:
            created = await client.post("/items", json={"name": "Widget"})
            listed = await client.get("/items")
{% else %}
        client = TestClient(app)
        created = client.post("/items", json={"name": "Widget"})
        listed = client.get("/items")
{% endif %}
        {{ aw }}transaction.rollback()

    assert created.status_code == 201
    assert listed.json()["total"] == 1
    assert {{ aw }}names_seen_by(reader) == []
