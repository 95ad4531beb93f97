{% set Conn = "AsyncConnection" if cookiecutter.driver == "async" else "Connection" %}
"""A write sent with an ``Idempotency-Key`` runs once, however often it is sent.

The answer is stored with the write, in its transaction (``idempotency/``):
a retry with the same key and request gets it again, and changes nothing.
"""

import asyncio
{% if cookiecutter.database == "postgresql" %}
import contextlib
{% endif %}
import logging
{% if cookiecutter.database == "postgresql" %}
import time
{% endif %}
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from httpx2 import AsyncClient, Response
{% if cookiecutter.driver == "async" %}
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection
{% else %}
from sqlalchemy import Connection, func, select, text, update
{% endif %}
from sqlalchemy.orm import Session

from {{ cookiecutter.package_name }}.idempotency.middleware import (
    HEADER,
    REPLAYED_HEADER,
)
from {{ cookiecutter.package_name }}.idempotency.models import (
    KEY_MAX_LENGTH,
    IdempotencyKey,
)
from {{ cookiecutter.package_name }}.idempotency.repository import (
    claim,
    purge_expired,
    store_answer,
)
from {{ cookiecutter.package_name }}.items.models import Item
from {{ cookiecutter.package_name }}.session import SessionDep
from {{ cookiecutter.package_name }}.settings import Settings

{% if cookiecutter.database == "postgresql" %}
from .support import ask_the_database, client_of, empty_tables, running_app
{% else %}
from .support import ask_the_database
{% endif %}

# What a retry must answer exactly as the first time.
REPEATED_HEADERS = ("content-type", "content-length", "etag", "location")


async def count(connection: {{ Conn }}, model: type[Any]) -> int:
    return int({{ cookiecutter.__await }}connection.scalar(select(func.count()).select_from(model)) or 0)


def answer_of(response: Response) -> tuple[int, bytes, tuple[str | None, ...]]:
    headers = tuple(response.headers.get(name) for name in REPEATED_HEADERS)
    return response.status_code, response.content, headers


async def test_a_retried_create_is_answered_again_and_stored_once(
    client: AsyncClient, connection: {{ Conn }}
) -> None:
    body = {"name": "Widget", "description": "Small"}
    first = await client.post("/items", json=body, headers={HEADER: "create-1"})
    again = await client.post("/items", json=body, headers={HEADER: "create-1"})

    assert first.status_code == 201
    assert answer_of(again) == answer_of(first)
    assert again.headers[REPLAYED_HEADER] == "true"
    assert REPLAYED_HEADER not in first.headers
    assert await count(connection, Item) == 1


async def test_a_retried_delete_is_answered_again(
    client: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    created = (await client.post("/items", json={"name": "Widget"})).json()
    path = f"/items/{created['id']}"
    with caplog.at_level(logging.INFO):
        first = await client.delete(path, headers={HEADER: "delete-1"})
        again = await client.delete(path, headers={HEADER: "delete-1"})
        unkeyed = await client.delete(path)

    assert [first.status_code, again.status_code, unkeyed.status_code] == [204, 204, 404]
    assert again.headers[REPLAYED_HEADER] == "true"
    # The replay ran nothing: no second background task.
    assert [r.getMessage() for r in caplog.records].count(f"Item {created['id']} deleted") == 1


async def test_the_same_key_with_another_if_match_is_another_request(
    client: AsyncClient,
) -> None:
    created = (await client.post("/items", json={"name": "Widget"})).json()
    path, change = f"/items/{created['id']}", {"description": "Changed"}

    first = await client.patch(path, json=change, headers={HEADER: "k", "If-Match": '"1"'})
    other = await client.patch(path, json=change, headers={HEADER: "k", "If-Match": '"2"'})

    assert first.status_code == 200
    assert other.status_code == 422  # not the stored 200 of another precondition


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/items", {"name": "Other"}),
        ("POST", "/items?x=1", {"name": "Widget"}),
        ("POST", "/items/bulk", [{"name": "Widget"}]),
        ("PATCH", "/items/1", {"name": "Widget"}),
    ],
)
async def test_the_same_key_with_another_request_is_refused(
    client: AsyncClient, connection: {{ Conn }}, method: str, path: str, body: Any
) -> None:
    first = await client.post("/items", json={"name": "Widget"}, headers={HEADER: "k"})
    assert first.status_code == 201

    response = await client.request(method, path, json=body, headers={HEADER: "k"})

    assert response.status_code == 422
    [refused] = response.json()["detail"]  # as every 422 of the document: validation errors
    assert refused["loc"] == ["header", HEADER]
    assert refused["msg"] == f"This {HEADER} was sent before with a different request."
    assert await count(connection, Item) == 1


@pytest.mark.parametrize(
    "key", ["", " ", "ü", "a b", "x" * (KEY_MAX_LENGTH + 1), '"unterminated', "tab\there"]
)
async def test_a_malformed_key_is_refused(
    client: AsyncClient, connection: {{ Conn }}, key: str
) -> None:
    response = await client.post(
        "/items", json={"name": "Widget"}, headers=[(HEADER.encode(), key.encode())]
    )

    assert response.status_code == 400
    assert HEADER in response.json()["detail"]
    assert await count(connection, Item) == 0


async def test_two_keys_are_refused(client: AsyncClient, connection: {{ Conn }}) -> None:
    response = await client.post(
        "/items", json={"name": "Widget"}, headers=[(HEADER, "a"), (HEADER, "b")]
    )

    assert response.status_code == 400
    assert await count(connection, Item) == 0


async def test_a_key_is_the_same_plain_or_as_a_structured_string(client: AsyncClient) -> None:
    key = "k" * KEY_MAX_LENGTH
    first = await client.post("/items", json={"name": "Widget"}, headers={HEADER: key})
    again = await client.post("/items", json={"name": "Widget"}, headers={HEADER: f'"{key}"'})

    assert first.status_code == 201
    assert answer_of(again) == answer_of(first)


async def test_an_error_is_not_stored_and_a_retry_runs_again(
    client: AsyncClient, connection: {{ Conn }}
) -> None:
    taken = (await client.post("/items", json={"name": "Widget"})).json()
    refused = await client.post("/items", json={"name": "Widget"}, headers={HEADER: "k"})
    assert refused.status_code == 409
    assert await count(connection, IdempotencyKey) == 0

    assert (await client.delete(f"/items/{taken['id']}")).status_code == 204
    retried = await client.post("/items", json={"name": "Widget"}, headers={HEADER: "k"})

    assert retried.status_code == 201
    assert REPLAYED_HEADER not in retried.headers
    assert await count(connection, IdempotencyKey) == 1


# How many items have a name, asked on a connection of its own.
COUNT_NAMED = text("SELECT count(*) FROM items WHERE name = :name")


async def test_a_keyed_write_commits_once_its_answer_is_stored_a_plain_one_as_before(
    committed_client: AsyncClient, committed_app: FastAPI, database_url: str
) -> None:
    """Which part commits: a plain write's unit of work ends in the {{ cookiecutter.session_strategy }}, before
    its body streams; a keyed one's in the idempotency middleware, once its answer is stored."""
    seen: list[int] = []

    @committed_app.post("/test/streamed/{name}", status_code=201)
    {{ cookiecutter.__async }}def streamed(name: str, session: SessionDep) -> StreamingResponse:
        session.add(Item(name=name))
        {{ cookiecutter.__await }}session.flush()

        async def body() -> AsyncIterator[bytes]:
            seen.append(await ask_the_database(database_url, COUNT_NAMED, name=name))
            yield b"{}"

        return StreamingResponse(body(), status_code=201)

    plain = await committed_client.post("/test/streamed/plain")
    keyed = await committed_client.post("/test/streamed/keyed", headers={HEADER: "streamed"})

    assert (plain.status_code, keyed.status_code) == (201, 201)
    assert seen == [1, 0]  # what another connection saw while each body streamed
    assert await ask_the_database(database_url, COUNT_NAMED, name="keyed") == 1


{% if cookiecutter.database == "postgresql" %}
async def test_a_retry_while_the_first_runs_is_refused_at_once_holding_no_connection(
    committed_client: AsyncClient, committed_app: FastAPI
) -> None:
    """The first request holds its key's unit of work open in its endpoint; a retry is
    answered 409 with Retry-After at once, instead of waiting for it with a connection."""
    running, release = asyncio.Event(), asyncio.Event()

    @committed_app.post("/test/slow", status_code=201)
    async def slow(session: SessionDep) -> dict[str, str]:
        running.set()
        await release.wait()
        return {"done": "yes"}

    database = committed_app.state.database
    first = asyncio.create_task(committed_client.post("/test/slow", headers={HEADER: "slow"}))
    await running.wait()
    started = time.monotonic()
    retry = await committed_client.post("/test/slow", headers={HEADER: "slow"})
    waited = time.monotonic() - started
    held = database.engine.pool.checkedout()
    release.set()
    answered = await first
    again = await committed_client.post("/test/slow", headers={HEADER: "slow"})

    assert retry.status_code == 409
    assert retry.headers["retry-after"] == "1"
    assert HEADER in retry.json()["detail"]
    assert waited < 0.5
    assert held == 1  # the first request's: the retry gave its own back at once
    assert answered.status_code == 201
    assert again.status_code == 201
    assert again.headers[REPLAYED_HEADER] == "true"


async def test_retries_cancelled_while_the_first_runs_leave_every_connection_free(
    settings: Settings,
) -> None:
    """Retries cut short (a request timeout, a client gone) while the first one runs take
    no place of the pool for good: afterwards every connection can be had."""
    small = {"db_pool_size": 2, "db_max_overflow": 0, "db_pool_timeout": 1}
    async with running_app(settings, **small) as app, client_of(app) as client:
        running, release = asyncio.Event(), asyncio.Event()

        @app.post("/test/slow", status_code=201)
        async def slow(session: SessionDep) -> dict[str, str]:
            running.set()
            await release.wait()
            return {"done": "yes"}

        first = asyncio.create_task(client.post("/test/slow", headers={HEADER: "slow"}))
        await running.wait()
        for _ in range(3):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(client.post("/test/slow", headers={HEADER: "slow"}), 0.3)
        release.set()
        assert (await first).status_code == 201
        database = app.state.database
        units = [await database.begin(name=f"unit {n}") for n in range(2)]  # the whole pool
        for unit in units:
            await database.end(unit, commit=False)
        await empty_tables(database.engine)
{% else %}
async def test_concurrent_retries_wait_for_the_first_and_store_once(
    committed_client: AsyncClient, committed_app: FastAPI
) -> None:
    body = {"name": "Widget"}
    responses = await asyncio.gather(
        *[committed_client.post("/items", json=body, headers={HEADER: "same"}) for _ in range(8)]
    )

    assert {answer_of(response) for response in responses} == {answer_of(responses[0])}
    assert responses[0].status_code == 201
    assert [r.headers.get(REPLAYED_HEADER) for r in responses].count("true") == 7
    listed = await committed_client.get("/items")
    assert len(listed.json()["items"]) == 1
    assert committed_app.state.database.engine.pool.checkedout() == 0
{% endif %}


def expire_every_key(session: Session) -> None:
    yesterday = datetime.now(UTC) - timedelta(days=1)
    session.execute(update(IdempotencyKey).values(expires_at=yesterday))


async def test_an_expired_key_is_claimed_anew(
    committed_client: AsyncClient, committed_app: FastAPI
) -> None:
    first = await committed_client.post("/items", json={"name": "First"}, headers={HEADER: "k"})
    refused = await committed_client.post("/items", json={"name": "Second"}, headers={HEADER: "k"})
    database = committed_app.state.database
    async with database.open_session() as session:
        await database.run(session, expire_every_key)
    later = await committed_client.post("/items", json={"name": "Second"}, headers={HEADER: "k"})

    assert [first.status_code, refused.status_code, later.status_code] == [201, 422, 201]
    assert REPLAYED_HEADER not in later.headers


async def test_the_purge_keeps_a_key_claimed_anew_while_it_ran(
    committed_client: AsyncClient, committed_app: FastAPI
) -> None:
    """An expired key is claimed anew by a request whose transaction is still open while
    the purge runs: the purge, which waits for that row, finds it no longer expired."""
    first = await committed_client.post("/items", json={"name": "a"}, headers={HEADER: "k"})
    assert first.status_code == 201
    database = committed_app.state.database
    async with database.open_session() as session:
        await database.run(session, expire_every_key)
    later = datetime.now(UTC) + timedelta(minutes=1)

    claimer = await database.begin(name="a request claiming the key anew")
    try:
        assert await database.run(claimer, claim, "k", "another request", 3600) is None
        purging = asyncio.create_task(purge_now(database, later - timedelta(seconds=30)))
        await asyncio.sleep(0.3)  # the purge waits for the claimed row
        await database.run(claimer, store_answer, "k", 201, [], b"{}")
    finally:
        await database.end(claimer, commit=True)
    purged = await purging

    async with database.open_session(writes=False) as session:
        kept = await database.run(session, Session.get, IdempotencyKey, "k")
    assert purged == 0
    assert kept is not None
    assert kept.status == 201


async def purge_now(database: Any, now: datetime) -> int:
    async with database.open_session(name="the purge") as session:
        purged: int = await database.run(session, purge_expired, now)
        return purged


async def test_expired_keys_are_purged(
    committed_client: AsyncClient, committed_app: FastAPI, settings: Settings
) -> None:
    for key in ("a", "b"):
        created = await committed_client.post("/items", json={"name": key}, headers={HEADER: key})
        assert created.status_code == 201
    database = committed_app.state.database
    expired_by = datetime.now(UTC) + timedelta(seconds=settings.idempotency_key_ttl + 1)

    async with database.open_session() as session:
        assert await database.run(session, purge_expired) == 0
        assert await database.run(session, purge_expired, expired_by) == 2
        assert await database.run(session, purge_expired, expired_by) == 0


def test_the_openapi_document_offers_the_key_on_every_write(app: FastAPI) -> None:
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            names = [parameter["name"] for parameter in operation.get("parameters", [])]
            writes = method.upper() in {"POST", "PUT", "PATCH", "DELETE"}
            assert (HEADER in names) == writes, (method, path)
            if writes:
                assert HEADER in operation["responses"]["400"]["description"]
