{% set Conn = "AsyncConnection" if cookiecutter.driver == "async" else "Connection" %}
"""Hostile input gets a clear 4xx in JSON — never a 5xx — and leaves nothing behind."""

import json
import logging
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from httpx2 import ASGITransport, AsyncClient
{% if cookiecutter.driver == "async" %}
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection
{% else %}
from sqlalchemy import Connection, func, select
{% endif %}
from starlette.types import Receive, Scope, Send

from {{ cookiecutter.package_name }}.db.types import MAX_ID
from {{ cookiecutter.package_name }}.http import SecurityHeadersMiddleware
from {{ cookiecutter.package_name }}.items.models import Item
from {{ cookiecutter.package_name }}.settings import Settings

from .support import client_of, running_app, settings_for


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


def refuse_constants(constant: str) -> None:
    raise AssertionError(f"the answer holds {constant}, which JSON does not have")


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e99999"])
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/items", '{"name": %s}'),
        ("POST", "/items", '{"name": "Widget", "description": %s}'),
        ("POST", "/items", '{"name": "Widget", "unknown": %s}'),
        ("POST", "/items/bulk", '[{"name": %s}]'),
        ("PATCH", "/items/1", '{"description": %s}'),
    ],
)
async def test_numbers_json_has_not_are_refused_naming_the_field(
    client: AsyncClient, connection: {{ Conn }}, method: str, path: str, body: str, number: str
) -> None:
    """Python's JSON parser accepts NaN and the infinities; JSON has no such numbers, and
    the answer that repeats them must still be JSON."""
    response = await client.request(
        method, path, content=body % number, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 422
    detail = json.loads(response.text, parse_constant=refuse_constants)["detail"]
    assert detail[0]["loc"][-1] in {"name", "description", "unknown"}
    assert await stored_items(connection) == 0


def nested(kind: str, depth: int) -> str:
    """JSON ``depth`` levels deep: arrays in arrays, or objects in objects."""
    if kind == "array":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "0" + "}" * depth


@pytest.mark.parametrize("kind", ["array", "object"])
@pytest.mark.parametrize("body", ["%s", '{"name": %s}'])
async def test_json_nested_to_any_depth_is_a_short_4xx_that_logs_nothing(
    client: AsyncClient,
    connection: {{ Conn }},
    caplog: pytest.LogCaptureFixture,
    kind: str,
    body: str,
) -> None:
    """Python's parser takes JSON some 1,000 levels deep, and a 422 repeats what it
    refused: only so deep, so long, or repeating it would itself fail (a 500)."""
    for depth in [*range(1, 2000, 25), 2000]:
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            response = await client.post(
                "/items",
                content=body % nested(kind, depth),
                headers={"Content-Type": "application/json"},
            )

        assert response.status_code in {400, 422}, (depth, response.text[:200])
        assert len(response.content) < 2_000, depth
        assert caplog.records == [], depth
    assert await stored_items(connection) == 0


@pytest.mark.parametrize(
    "name",
    [
        list(range(50_000)),  # wide
        {f"key-{n}": n for n in range(20_000)},
        "x" * 200_000,  # long (a name of 100 at most)
        {"k" * 100_000: 0},  # a long key
    ],
    ids=["list", "object", "text", "key"],
)
async def test_a_wide_or_long_refused_value_is_repeated_cut_short(
    client: AsyncClient, connection: {{ Conn }}, name: object
) -> None:
    response = await client.post("/items", json={"name": name})

    assert response.status_code == 422
    assert len(response.content) < 2_000
    assert "..." in response.text  # cut, and saying so
    assert await stored_items(connection) == 0


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_an_id_of_more_digits_than_python_converts_names_no_item(
    client: AsyncClient, method: str
) -> None:
    longest = await client.request(method, "/items/" + "9" * 4300, json={})
    longer = await client.request(method, "/items/" + "9" * 4301, json={})

    assert longest.status_code == 422
    assert longer.status_code == 404


async def test_a_declared_length_of_thousands_of_digits_is_refused(client: AsyncClient) -> None:
    response = await client.post(
        "/items",
        content=b"{}",
        headers={"Content-Length": "9" * 5000, "Content-Type": "application/json"},
    )

    assert response.status_code == 413


@pytest.mark.parametrize(
    ("stored", "sent"),
    [
        ("Café", "Cafe\u0301"),  # composed and decomposed
        ("Widget", "Widget "),
        ("Widget", "\u00a0Widget\u2003"),  # no-break space, em space
    ],
)
async def test_look_alike_names_are_the_same_name(
    client: AsyncClient, connection: {{ Conn }}, stored: str, sent: str
) -> None:
    first = await client.post("/items", json={"name": stored})
    look_alike = await client.post("/items", json={"name": sent})

    assert first.status_code == 201
    assert look_alike.status_code == 409
    assert await stored_items(connection) == 1


async def test_a_name_is_stored_in_one_spelling(client: AsyncClient) -> None:
    created = await client.post("/items", json={"name": "  Cafe\u0301  "})

    assert created.status_code == 201
    assert created.json()["name"] == "Café"


@pytest.mark.parametrize(
    ("name", "status_code"),
    [
        (" " + "x" * 99, 201),
        (" " + "x" * 100, 422),  # the schema's maxLength counts what was sent
        ("x" * 100 + " ", 422),
        ("Cafe\u0301" + "x" * 96, 422),  # 101 sent, though 100 once composed
        ("\ufb2c" * 34, 422),  # 34 sent: composed, 102 (each one becomes three)
        ("\ufb2c" * 33, 201),
    ],
)
async def test_a_name_fits_its_length_as_sent_and_as_stored(
    client: AsyncClient, connection: {{ Conn }}, name: str, status_code: int
) -> None:
    declared = (await client.get("/openapi.json")).json()["components"]["schemas"]
    assert declared["ItemCreate"]["properties"]["name"]["maxLength"] == 100

    response = await client.post("/items", json={"name": name})

    assert response.status_code == status_code, response.text
    assert await stored_items(connection) == (1 if status_code == 201 else 0)


@pytest.mark.parametrize(
    "name",
    ["Wid\u200bget", "Wid\u00adget", "\u202eWidget", "Widget\ufeff", "Wid\x07get", " ", "\u3000"],
)
async def test_invisible_and_control_characters_in_a_name_are_refused(
    client: AsyncClient, connection: {{ Conn }}, name: str
) -> None:
    response = await client.post("/items", json={"name": name})

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "name"]
    assert await stored_items(connection) == 0


@pytest.mark.parametrize("path", ["/health", "/items/1", "/items?limit=0", "/docs"])
async def test_every_answer_carries_the_security_headers(client: AsyncClient, path: str) -> None:
    response = await client.get(path)

    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"


async def test_a_route_that_says_how_to_cache_it_is_not_overruled() -> None:
    async def cacheable(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("ok", headers={"Cache-Control": "max-age=60"})(scope, receive, send)

    app = SecurityHeadersMiddleware(cacheable)
    async with AsyncClient(transport=ASGITransport(app), base_url="http://test") as client:
        response = await client.get("/")

    assert response.headers.get_list("cache-control") == ["max-age=60"]
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.fixture
async def served_hosts(settings: Settings) -> AsyncIterator[AsyncClient]:
    """The app with ALLOWED_HOSTS as its variable would say it."""
    hosts = settings_for(
        settings.database_url, allowed_hosts="api.example.com, *.internal.example.com"
    )
    async with running_app(hosts) as app, client_of(app) as client:
        yield client


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("api.example.com", 200),
        ("API.example.com:8000", 200),
        ("a.internal.example.com", 200),
        ("internal.example.com", 400),
        ("example.com", 400),
        ("api.example.com.evil.test", 400),
        ("api.example.com:x", 400),
        ("api example.com", 400),
    ],
)
async def test_only_the_served_hosts_are_answered(
    served_hosts: AsyncClient, host: str, status: int
) -> None:
    response = await served_hosts.get("/health", headers={"Host": host})

    assert response.status_code == status
    if status == 400:
        assert response.json()["detail"]
