{% set Conn = "AsyncConnection" if cookiecutter.driver == "async" else "Connection" %}
"""Hostile input gets a clear 4xx in JSON — never a 5xx — and leaves nothing behind."""

import logging
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient
{% if cookiecutter.driver == "async" %}
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection
{% else %}
from sqlalchemy import Connection, func, select
{% endif %}

from {{ cookiecutter.package_name }}.db.types import MAX_ID
from {{ cookiecutter.package_name }}.items.models import Item
from {{ cookiecutter.package_name }}.settings import Settings

from .support import client_of, running_app


async def stored_items(connection: {{ Conn }}) -> int:
    return {{ cookiecutter.__await }}connection.scalar(select(func.count()).select_from(Item)) or 0


@pytest.mark.parametrize("item_id", [MAX_ID + 1, 2**63, 10**30, 0])
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_an_id_the_column_cannot_hold_is_refused(
    client: AsyncClient, method: str, item_id: int
) -> None:
    body = {"description": "x"} if method == "PATCH" else None
    response = await client.request(method, f"/items/{item_id}", json=body)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "item_id"]


@pytest.mark.parametrize("item_id", ["-1", "1.5", "bulk2", "%00"])
async def test_a_path_that_is_no_id_names_no_item(client: AsyncClient, item_id: str) -> None:
    response = await client.get(f"/items/{item_id}")

    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


async def test_a_method_the_path_lacks_lists_every_method_it_has(client: AsyncClient) -> None:
    on_item = await client.put("/items/1", json={"name": "Widget"})
    on_bulk = await client.patch("/items/bulk", json={"name": "Widget"})

    assert on_item.status_code == on_bulk.status_code == 405
    assert on_item.headers["allow"] == "DELETE, GET, PATCH"
    assert on_bulk.headers["allow"] == "POST"


async def test_the_largest_id_the_column_holds_is_merely_unknown(client: AsyncClient) -> None:
    response = await client.get(f"/items/{MAX_ID}")

    assert response.status_code == 404


@pytest.mark.parametrize("offset", [2**63, 10**30])
async def test_an_offset_past_64_bits_is_refused(client: AsyncClient, offset: int) -> None:
    response = await client.get("/items", params={"offset": offset})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "offset"]


@pytest.mark.parametrize("field", ["name", "description"])
async def test_text_with_a_nul_character_is_refused(
    client: AsyncClient, connection: {{ Conn }}, field: str
) -> None:
    created = await client.post("/items", json={"name": "Widget", field: "a\x00b"})
    item = await client.post("/items", json={"name": "Gadget"})
    changed = await client.patch(f"/items/{item.json()['id']}", json={field: "a\x00b"})

    for response in (created, changed):
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"][:2] == ["body", field]
    assert await stored_items(connection) == 1


async def test_an_unpaired_surrogate_is_refused_in_json(
    client: AsyncClient, connection: {{ Conn }}
) -> None:
    response = await client.post(
        "/items", content=b'{"name": "\\ud800"}', headers={"content-type": "application/json"}
    )

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "name"]
    assert await stored_items(connection) == 0


@pytest.fixture
async def small_body_app(settings: Settings) -> AsyncIterator[FastAPI]:
    async with running_app(settings, max_request_body=100) as app:
        yield app


async def test_a_body_over_the_limit_is_refused_before_it_is_parsed(
    small_body_app: FastAPI,
) -> None:
    body = b'{"name": "' + b"x" * 200 + b'"}'

    async def in_chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        for start in range(0, len(body), 50):
            yield body[start : start + 50]

    async with client_of(small_body_app) as client:
        declared = await client.post("/items", content=body)
        streamed = await client.post("/items", content=in_chunks())
        small = await client.post("/items", json={"name": ""})  # read, parsed and refused

    assert declared.status_code == streamed.status_code == 413
    assert declared.json() == {"detail": "The request body is larger than 100 bytes."}
    assert small.status_code == 422


async def test_an_unexpected_error_is_a_json_500_logged_once(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    @app.get("/test/bug")
    async def bug() -> None:
        raise RuntimeError("SELECT secret FROM settings")

    async with client_of(app) as client:
        response = await client.get("/test/bug")

    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error."}
    logged = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(logged) == 1
    assert logged[0].exc_info is not None


async def test_the_id_of_a_deleted_item_is_never_reused(client: AsyncClient) -> None:
    await client.post("/items", json={"name": "first"})
    newest = (await client.post("/items", json={"name": "second"})).json()
    assert (await client.delete(f"/items/{newest['id']}")).status_code == 204

    another = (await client.post("/items", json={"name": "third"})).json()

    assert another["id"] > newest["id"]
    assert (await client.get(f"/items/{newest['id']}")).status_code == 404
