{% set Conn = "AsyncConnection" if cookiecutter.driver == "async" else "Connection" %}
"""The ``/items`` API: every endpoint, every status it answers with."""

from typing import Any

import pytest
from httpx2 import AsyncClient
{% if cookiecutter.driver == "async" %}
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection
{% else %}
from sqlalchemy import Connection, select
{% endif %}

from {{ cookiecutter.package_name }}.items.models import Item


async def stored_names(connection: {{ Conn }}) -> list[str]:
    return list({{ cookiecutter.__await }}connection.scalars(select(Item.name).order_by(Item.name)))


async def create(client: AsyncClient, name: str, description: str | None = None) -> dict[str, Any]:
    response = await client.post("/items", json={"name": name, "description": description})
    assert response.status_code == 201, response.text
    item: dict[str, Any] = response.json()
    return item


async def test_create_returns_the_stored_item(
    client: AsyncClient,
    connection: {{ Conn }},
) -> None:
    response = await client.post("/items", json={"name": "Widget", "description": "Small"})

    assert response.status_code == 201
    body = response.json()
    assert body == {"id": body["id"], "name": "Widget", "description": "Small"}
    assert isinstance(body["id"], int)
    assert await stored_names(connection) == ["Widget"]


async def test_description_is_optional(client: AsyncClient) -> None:
    response = await client.post("/items", json={"name": "Bare"})

    assert response.status_code == 201
    assert response.json()["description"] is None


async def test_duplicate_name_is_a_conflict(
    client: AsyncClient,
    connection: {{ Conn }},
) -> None:
    await create(client, "Widget")

    response = await client.post("/items", json={"name": "Widget"})

    assert response.status_code == 409
    assert "Widget" in response.json()["detail"]
    assert await stored_names(connection) == ["Widget"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "x" * 101},
        {"name": None},
        {"name": 42},
        {"name": "ok", "unexpected": True},
        [{"name": "a list"}],
    ],
    ids=["missing-name", "empty", "too-long", "null-name", "number-name", "extra-field", "list"],
)
async def test_invalid_body_is_rejected(
    client: AsyncClient,
    connection: {{ Conn }},
    body: object,
) -> None:
    response = await client.post("/items", json=body)

    assert response.status_code == 422
    assert response.json()["detail"]
    assert await stored_names(connection) == []


async def test_malformed_json_is_rejected(client: AsyncClient) -> None:
    response = await client.post(
        "/items", content=b'{"name": "Widget"', headers={"content-type": "application/json"}
    )

    assert response.status_code == 422


async def test_name_of_100_characters_is_accepted(client: AsyncClient) -> None:
    item = await create(client, "x" * 100)

    assert len(item["name"]) == 100


async def test_get_returns_the_item(client: AsyncClient) -> None:
    item = await create(client, "Widget", "Small")

    response = await client.get(f"/items/{item['id']}")

    assert response.status_code == 200
    assert response.json() == item


async def test_get_unknown_item_is_404(client: AsyncClient) -> None:
    response = await client.get("/items/999999")

    assert response.status_code == 404
    assert response.json() == {"detail": "Item 999999 not found."}


async def test_list_pages_in_id_order_with_the_total(client: AsyncClient) -> None:
    created = [await create(client, f"item-{n}") for n in range(5)]

    first = await client.get("/items", params={"limit": 2})
    rest = await client.get("/items", params={"offset": 2, "limit": 50})

    assert first.status_code == rest.status_code == 200
    assert first.json() == {"items": created[:2], "total": 5}
    assert rest.json() == {"items": created[2:], "total": 5}


async def test_list_of_nothing(client: AsyncClient) -> None:
    response = await client.get("/items")

    assert response.status_code == 200
    assert response.json() == {"items": [], "total": 0}


async def test_list_limit_defaults_to_50(client: AsyncClient) -> None:
    response = await client.post("/items/bulk", json=[{"name": f"item-{n:02}"} for n in range(60)])
    assert response.status_code == 201

    page = await client.get("/items")

    assert len(page.json()["items"]) == 50
    assert page.json()["total"] == 60


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"offset": -1}, {"limit": "x"}])
async def test_list_rejects_bad_paging(client: AsyncClient, params: dict[str, int | str]) -> None:
    response = await client.get("/items", params=params)

    assert response.status_code == 422


async def test_patch_changes_only_the_fields_sent(client: AsyncClient) -> None:
    item = await create(client, "Widget", "Small")

    response = await client.patch(f"/items/{item['id']}", json={"description": "Large"})

    assert response.status_code == 200
    assert response.json() == {**item, "description": "Large"}
    stored = await client.get(f"/items/{item['id']}")
    assert stored.json() == {**item, "description": "Large"}


async def test_patch_can_clear_the_description(client: AsyncClient) -> None:
    item = await create(client, "Widget", "Small")

    response = await client.patch(f"/items/{item['id']}", json={"description": None})

    assert response.status_code == 200
    assert response.json()["description"] is None


async def test_patch_rejects_a_null_name(client: AsyncClient) -> None:
    item = await create(client, "Widget")

    response = await client.patch(f"/items/{item['id']}", json={"name": None})

    assert response.status_code == 422


async def test_patch_to_a_taken_name_is_a_conflict(
    client: AsyncClient,
    connection: {{ Conn }},
) -> None:
    await create(client, "Widget")
    other = await create(client, "Gadget")

    response = await client.patch(f"/items/{other['id']}", json={"name": "Widget"})

    assert response.status_code == 409
    assert await stored_names(connection) == ["Gadget", "Widget"]


async def test_patch_unknown_item_is_404(client: AsyncClient) -> None:
    response = await client.patch("/items/999999", json={"description": "Large"})

    assert response.status_code == 404


async def test_delete_removes_the_item(
    client: AsyncClient,
    connection: {{ Conn }},
) -> None:
    item = await create(client, "Widget")

    response = await client.delete(f"/items/{item['id']}")

    assert response.status_code == 204
    assert response.content == b""
    assert "content-type" not in response.headers  # no body, so no type
    gone = await client.get(f"/items/{item['id']}")
    assert gone.status_code == 404
    assert await stored_names(connection) == []


async def test_delete_unknown_item_is_404(client: AsyncClient) -> None:
    response = await client.delete("/items/999999")

    assert response.status_code == 404


async def test_bulk_creates_every_item(
    client: AsyncClient,
    connection: {{ Conn }},
) -> None:
    body = [{"name": "a"}, {"name": "b", "description": "B"}]

    response = await client.post("/items/bulk", json=body)

    assert response.status_code == 201
    assert [(item["name"], item["description"]) for item in response.json()] == [
        ("a", None),
        ("b", "B"),
    ]
    assert await stored_names(connection) == ["a", "b"]


async def test_bulk_with_a_duplicate_inside_writes_nothing(
    client: AsyncClient,
    connection: {{ Conn }},
) -> None:
    response = await client.post("/items/bulk", json=[{"name": "a"}, {"name": "b"}, {"name": "a"}])

    assert response.status_code == 409
    assert await stored_names(connection) == []


async def test_bulk_clashing_with_a_stored_item_writes_nothing(
    client: AsyncClient,
    connection: {{ Conn }},
) -> None:
    await create(client, "b")

    response = await client.post("/items/bulk", json=[{"name": "a"}, {"name": "b"}, {"name": "c"}])

    assert response.status_code == 409
    assert await stored_names(connection) == ["b"]


@pytest.mark.parametrize(
    "body",
    [
        [],
        [{"name": f"n{n}"} for n in range(101)],
        [{"name": "ok"}, {"name": ""}],
        {"name": "not a list"},
    ],
    ids=["empty", "over-100", "one-invalid", "not-a-list"],
)
async def test_bulk_rejects_invalid_lists(
    client: AsyncClient,
    connection: {{ Conn }},
    body: object,
) -> None:
    response = await client.post("/items/bulk", json=body)

    assert response.status_code == 422
    assert await stored_names(connection) == []


async def test_every_item_answer_carries_its_version_as_etag(client: AsyncClient) -> None:
    created = await client.post("/items", json={"name": "Widget"})
    read = await client.get(f"/items/{created.json()['id']}")
    changed = await client.patch(f"/items/{created.json()['id']}", json={"description": "Big"})

    assert created.headers["etag"] == read.headers["etag"] == '"1"'
    assert changed.headers["etag"] == '"2"'


@pytest.mark.parametrize(
    ("if_match", "status_code"),
    [('"1"', 200), ('"0", "1"', 200), ("*", 200), ('"2"', 412), ('W/"1"', 412)],
)
async def test_patch_applies_only_to_the_version_in_if_match(
    client: AsyncClient, if_match: str, status_code: int
) -> None:
    item = await create(client, "Widget", "Small")

    response = await client.patch(
        f"/items/{item['id']}", json={"description": "Large"}, headers={"If-Match": if_match}
    )

    assert response.status_code == status_code
    stored = (await client.get(f"/items/{item['id']}")).json()
    assert stored["description"] == ("Large" if status_code == 200 else "Small")
    if status_code == 412:
        assert response.headers["etag"] == '"1"'


async def test_delete_with_a_stale_etag_is_refused(client: AsyncClient) -> None:
    item = await create(client, "Widget")
    await client.patch(f"/items/{item['id']}", json={"description": "changed"})

    stale = await client.delete(f"/items/{item['id']}", headers={"If-Match": '"1"'})
    current = await client.delete(f"/items/{item['id']}", headers={"If-Match": '"2"'})

    assert stale.status_code == 412
    assert current.status_code == 204
