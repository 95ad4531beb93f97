{% set is_async = cookiecutter.driver == "async" %}
{% set aw = cookiecutter.__await %}
{% set Client = "AsyncClient" if is_async else "TestClient" %}
{% set Conn = "AsyncConnection" if is_async else "Connection" %}
"""The ``/items`` API: every endpoint, every status it answers with."""

from typing import Any

import pytest
{% if is_async %}
from httpx2 import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection
{% else %}
from fastapi.testclient import TestClient
from sqlalchemy import Connection, select
{% endif %}

from {{ cookiecutter.package_name }}.items.models import Item


{{ cookiecutter.__async }}def stored_names(connection: {{ Conn }}) -> list[str]:
    return list({{ aw }}connection.scalars(select(Item.name).order_by(Item.name)))


{{ cookiecutter.__async }}def create(client: {{ Client }}, name: str, description: str | None = None) -> dict[str, Any]:
    response = {{ aw }}client.post("/items", json={"name": name, "description": description})
    assert response.status_code == 201, response.text
    item: dict[str, Any] = response.json()
    return item


{{ cookiecutter.__async }}def test_create_returns_the_stored_item(
    client: {{ Client }},
    connection: {{ Conn }},
) -> None:
    response = {{ aw }}client.post("/items", json={"name": "Widget", "description": "Small"})

    assert response.status_code == 201
    body = response.json()
    assert body == {"id": body["id"], "name": "Widget", "description": "Small"}
    assert isinstance(body["id"], int)
    assert {{ aw }}stored_names(connection) == ["Widget"]


{{ cookiecutter.__async }}def test_description_is_optional(client: {{ Client }}) -> None:
    response = {{ aw }}client.post("/items", json={"name": "Bare"})

    assert response.status_code == 201
    assert response.json()["description"] is None


{{ cookiecutter.__async }}def test_duplicate_name_is_a_conflict(
    client: {{ Client }},
    connection: {{ Conn }},
) -> None:
    {{ aw }}create(client, "Widget")

    response = {{ aw }}client.post("/items", json={"name": "Widget"})

    assert response.status_code == 409
    assert "Widget" in response.json()["detail"]
    assert {{ aw }}stored_names(connection) == ["Widget"]


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
{{ cookiecutter.__async }}def test_invalid_body_is_rejected(
    client: {{ Client }},
    connection: {{ Conn }},
    body: object,
) -> None:
    response = {{ aw }}client.post("/items", json=body)

    assert response.status_code == 422
    assert response.json()["detail"]
    assert {{ aw }}stored_names(connection) == []


{{ cookiecutter.__async }}def test_malformed_json_is_rejected(client: {{ Client }}) -> None:
    response = {{ aw }}client.post(
        "/items", content=b'{"name": "Widget"', headers={"content-type": "application/json"}
    )

    assert response.status_code == 422


{{ cookiecutter.__async }}def test_name_of_100_characters_is_accepted(client: {{ Client }}) -> None:
    item = {{ aw }}create(client, "x" * 100)

    assert len(item["name"]) == 100


{{ cookiecutter.__async }}def test_get_returns_the_item(client: {{ Client }}) -> None:
    item = {{ aw }}create(client, "Widget", "Small")

    response = {{ aw }}client.get(f"/items/{item['id']}")

    assert response.status_code == 200
    assert response.json() == item


{{ cookiecutter.__async }}def test_get_unknown_item_is_404(client: {{ Client }}) -> None:
    response = {{ aw }}client.get("/items/999999")

    assert response.status_code == 404
    assert response.json() == {"detail": "Item 999999 not found."}


{{ cookiecutter.__async }}def test_list_pages_in_id_order_with_the_total(client: {{ Client }}) -> None:
    created = [{{ aw }}create(client, f"item-{n}") for n in range(5)]

    first = {{ aw }}client.get("/items", params={"limit": 2})
    rest = {{ aw }}client.get("/items", params={"offset": 2, "limit": 50})

    assert first.status_code == rest.status_code == 200
    assert first.json() == {"items": created[:2], "total": 5}
    assert rest.json() == {"items": created[2:], "total": 5}


{{ cookiecutter.__async }}def test_list_of_nothing(client: {{ Client }}) -> None:
    response = {{ aw }}client.get("/items")

    assert response.status_code == 200
    assert response.json() == {"items": [], "total": 0}


{{ cookiecutter.__async }}def test_list_limit_defaults_to_50(client: {{ Client }}) -> None:
    response = {{ aw }}client.post("/items/bulk", json=[{"name": f"item-{n:02}"} for n in range(60)])
    assert response.status_code == 201

    page = {{ aw }}client.get("/items")

    assert len(page.json()["items"]) == 50
    assert page.json()["total"] == 60


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"offset": -1}, {"limit": "x"}])
{{ cookiecutter.__async }}def test_list_rejects_bad_paging(client: {{ Client }}, params: dict[str, int | str]) -> None:
    response = {{ aw }}client.get("/items", params=params)

    assert response.status_code == 422


{{ cookiecutter.__async }}def test_patch_changes_only_the_fields_sent(client: {{ Client }}) -> None:
    item = {{ aw }}create(client, "Widget", "Small")

    response = {{ aw }}client.patch(f"/items/{item['id']}", json={"description": "Large"})

    assert response.status_code == 200
    assert response.json() == {**item, "description": "Large"}
    stored = {{ aw }}client.get(f"/items/{item['id']}")
    assert stored.json() == {**item, "description": "Large"}


{{ cookiecutter.__async }}def test_patch_can_clear_the_description(client: {{ Client }}) -> None:
    item = {{ aw }}create(client, "Widget", "Small")

    response = {{ aw }}client.patch(f"/items/{item['id']}", json={"description": None})

    assert response.status_code == 200
    assert response.json()["description"] is None


{{ cookiecutter.__async }}def test_patch_rejects_a_null_name(client: {{ Client }}) -> None:
    item = {{ aw }}create(client, "Widget")

    response = {{ aw }}client.patch(f"/items/{item['id']}", json={"name": None})

    assert response.status_code == 422


{{ cookiecutter.__async }}def test_patch_to_a_taken_name_is_a_conflict(
    client: {{ Client }},
    connection: {{ Conn }},
) -> None:
    {{ aw }}create(client, "Widget")
    other = {{ aw }}create(client, "Gadget")

    response = {{ aw }}client.patch(f"/items/{other['id']}", json={"name": "Widget"})

    assert response.status_code == 409
    assert {{ aw }}stored_names(connection) == ["Gadget", "Widget"]


{{ cookiecutter.__async }}def test_patch_unknown_item_is_404(client: {{ Client }}) -> None:
    response = {{ aw }}client.patch("/items/999999", json={"description": "Large"})

    assert response.status_code == 404


{{ cookiecutter.__async }}def test_delete_removes_the_item(
    client: {{ Client }},
    connection: {{ Conn }},
) -> None:
    item = {{ aw }}create(client, "Widget")

    response = {{ aw }}client.delete(f"/items/{item['id']}")

    assert response.status_code == 204
    assert response.content == b""
    gone = {{ aw }}client.get(f"/items/{item['id']}")
    assert gone.status_code == 404
    assert {{ aw }}stored_names(connection) == []


{{ cookiecutter.__async }}def test_delete_unknown_item_is_404(client: {{ Client }}) -> None:
    response = {{ aw }}client.delete("/items/999999")

    assert response.status_code == 404


{{ cookiecutter.__async }}def test_bulk_creates_every_item(
    client: {{ Client }},
    connection: {{ Conn }},
) -> None:
    body = [{"name": "a"}, {"name": "b", "description": "B"}]

    response = {{ aw }}client.post("/items/bulk", json=body)

    assert response.status_code == 201
    assert [(item["name"], item["description"]) for item in response.json()] == [
        ("a", None),
        ("b", "B"),
    ]
    assert {{ aw }}stored_names(connection) == ["a", "b"]


{{ cookiecutter.__async }}def test_bulk_with_a_duplicate_inside_writes_nothing(
    client: {{ Client }},
    connection: {{ Conn }},
) -> None:
    response = {{ aw }}client.post("/items/bulk", json=[{"name": "a"}, {"name": "b"}, {"name": "a"}])

    assert response.status_code == 409
    assert {{ aw }}stored_names(connection) == []


{{ cookiecutter.__async }}def test_bulk_clashing_with_a_stored_item_writes_nothing(
    client: {{ Client }},
    connection: {{ Conn }},
) -> None:
    {{ aw }}create(client, "b")

    response = {{ aw }}client.post("/items/bulk", json=[{"name": "a"}, {"name": "b"}, {"name": "c"}])

    assert response.status_code == 409
    assert {{ aw }}stored_names(connection) == ["b"]


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
{{ cookiecutter.__async }}def test_bulk_rejects_invalid_lists(
    client: {{ Client }},
    connection: {{ Conn }},
    body: object,
) -> None:
    response = {{ aw }}client.post("/items/bulk", json=body)

    assert response.status_code == 422
    assert {{ aw }}stored_names(connection) == []
