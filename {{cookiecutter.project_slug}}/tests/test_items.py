{% set Conn = "AsyncConnection" if cookiecutter.driver == "async" else "Connection" %}
"""The ``/items`` API: every endpoint, every status it answers with."""

{% if cookiecutter.database == "sqlite" %}
import asyncio
{% endif %}
from typing import Any

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient
{% if cookiecutter.driver == "async" %}
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection
{% else %}
from sqlalchemy import Connection, select
{% endif %}
from sqlalchemy.orm import Session

from {{ cookiecutter.package_name }} import paging
from {{ cookiecutter.package_name }}.items.models import Item
from {{ cookiecutter.package_name }}.settings import Settings

from .support import statements_sent


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


async def test_get_returns_the_item_in_one_statement(app: FastAPI, client: AsyncClient) -> None:
    item = await create(client, "Widget", "Small")

    with statements_sent(app) as sent:
        response = await client.get(f"/items/{item['id']}")

    assert response.status_code == 200
    assert response.json() == item
    assert len(sent) == 1


async def test_an_item_is_answered_with_its_history_in_two_statements(
    app: FastAPI, client: AsyncClient
) -> None:
    item = await create(client, "Widget")
    counts = []
    for n in range(1, 4):
        changed = await client.patch(f"/items/{item['id']}", json={"description": f"v{n}"})
        assert changed.status_code == 200
        with statements_sent(app) as sent:
            response = await client.get(f"/items/{item['id']}/history")
        counts.append(len(sent))

        assert response.status_code == 200
        history = response.json()
        assert history["description"] == f"v{n}"
        assert [event["action"] for event in history["events"]] == ["updated"] * n
        # In UTC with its offset, on every database (the contract test found one without).
        assert all(event["at"].endswith("Z") for event in history["events"])
    assert counts == [2, 2, 2]  # the item, then all its events at once: never one per event
    assert (await client.get("/items/999999/history")).status_code == 404


async def test_get_unknown_item_is_404(client: AsyncClient) -> None:
    response = await client.get("/items/999999")

    assert response.status_code == 404
    assert response.json() == {"detail": "Item 999999 not found."}


async def pages_of(client: AsyncClient, url: str) -> list[dict[str, Any]]:
    """Every page of a list, following each page's next link from ``url``."""
    pages = []
    following: str | None = url
    while following is not None:
        response = await client.get(following)
        assert response.status_code == 200, response.text
        page: dict[str, Any] = response.json()
        link = response.headers.get("link")
        assert link == (None if page["next"] is None else f'<{page["next"]}>; rel="next"')
        pages.append(page)
        following = page["next"]
    return pages


async def test_a_list_is_paged_by_following_the_next_links(client: AsyncClient) -> None:
    created = [await create(client, f"item-{n}") for n in range(5)]

    pages = await pages_of(client, "/items?limit=2")

    assert [page["items"] for page in pages] == [created[:2], created[2:4], created[4:]]
    assert [page["next"] is None for page in pages] == [False, False, True]
    assert all(page["total"] is None for page in pages)  # not counted unless asked
    assert all("limit=2" in page["next"] for page in pages[:-1])


async def test_a_page_exactly_full_has_no_next_page_after_it(client: AsyncClient) -> None:
    created = [await create(client, f"item-{n}") for n in range(4)]

    pages = await pages_of(client, "/items?limit=2")

    assert [page["items"] for page in pages] == [created[:2], created[2:]]


async def test_a_page_costs_the_same_statements_whatever_its_size(
    app: FastAPI, client: AsyncClient
) -> None:
    response = await client.post("/items/bulk", json=[{"name": f"item-{n}"} for n in range(20)])
    assert response.status_code == 201
    counts = {}
    for query in ["limit=1", "limit=20", "limit=20&total=true"]:
        with statements_sent(app) as sent:
            assert (await client.get(f"/items?{query}")).status_code == 200
        counts[query] = len(sent)

    assert counts == {"limit=1": 1, "limit=20": 1, "limit=20&total=true": 2}


async def test_list_of_nothing(client: AsyncClient) -> None:
    response = await client.get("/items")

    assert response.status_code == 200
    assert response.json() == {"items": [], "next": None, "total": None}
    assert "link" not in response.headers


async def test_list_limit_defaults_to_50(client: AsyncClient) -> None:
    response = await client.post("/items/bulk", json=[{"name": f"item-{n:02}"} for n in range(60)])
    assert response.status_code == 201

    pages = await pages_of(client, "/items")

    assert [len(page["items"]) for page in pages] == [50, 10]


async def test_the_total_is_counted_when_asked_and_only_up_to_its_bound(
    client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    response = await client.post("/items/bulk", json=[{"name": f"item-{n}"} for n in range(5)])
    assert response.status_code == 201

    counted = await client.get("/items", params={"limit": 2, "total": "true"})
    monkeypatch.setattr(paging, "TOTAL_BOUND", 3)
    bounded = await client.get("/items", params={"limit": 2, "total": "true"})
    pages = await pages_of(client, "/items?limit=2&total=true")

    assert counted.json()["total"] == {"count": 5, "exact": True}
    assert bounded.json()["total"] == {"count": 3, "exact": False}  # at least 3
    assert [page["total"] for page in pages] == [{"count": 3, "exact": False}] * 3


async def test_paging_through_a_changing_list_skips_and_repeats_nothing(
    client: AsyncClient,
) -> None:
    """Between every two pages an item is deleted behind the cursor, another ahead of
    it, and one created: the walk sees every item that lived through it once, in id
    order, every item created meanwhile, and none deleted before its page."""
    ids = [(await create(client, f"first-{n}"))["id"] for n in range(30)]
    seen: list[int] = []
    deleted_ahead: set[int] = set()
    created: list[int] = []
    following: str | None = "/items?limit=7"
    while following is not None:
        page = (await client.get(following)).json()
        seen += [item["id"] for item in page["items"]]
        following = page["next"]
        behind = seen[-1]
        ahead = next((n for n in ids if n > behind and n not in deleted_ahead), None)
        for gone in [behind] if ahead is None else [behind, ahead]:
            assert (await client.delete(f"/items/{gone}")).status_code == 204
        if ahead is not None:
            deleted_ahead.add(ahead)
        created.append((await create(client, f"later-{len(created)}"))["id"])

    assert seen == sorted(set(seen))  # in id order, none twice
    assert deleted_ahead
    assert not deleted_ahead & set(seen)
    assert set(ids) - deleted_ahead <= set(seen)
    assert set(created[:-1]) <= set(seen)  # all but the one created after the last page


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": "x"},
        {"after": "x"},
        {"after": -1},
        {"after": 1.5},
        {"after": 2**63},
        {"after": "9" * 5000},
        {"total": "maybe"},
    ],
)
async def test_list_rejects_bad_paging(client: AsyncClient, params: dict[str, int | str]) -> None:
    response = await client.get("/items", params=params)

    assert response.status_code == 422


async def test_a_next_link_names_the_last_id_and_nothing_derived_from_a_secret(
    client: AsyncClient, settings: Settings
) -> None:
    """The link carries the page's last id, in the clear: no signature, so nothing in
    it can be checked offline against a guess of DATABASE_URL or of any other setting."""
    created = [await create(client, f"item-{n}") for n in range(3)]

    page = (await client.get("/items", params={"limit": 1})).json()

    assert page["next"] == f"/items?limit=1&after={created[0]['id']}"
    assert settings.database_url not in page["next"]
    # Any id is a place to start: one a client makes up answers like one it was given.
    made_up = await client.get("/items", params={"after": created[1]["id"]})
    assert made_up.json()["items"] == created[2:]


def insert_late(session: Session) -> int:
    """An item inserted, its id taken, in a transaction that stays open."""
    item = Item(name="late", version=1)
    session.add(item)
    session.flush()
    return item.id


{% if cookiecutter.database == "postgresql" %}
async def test_a_walk_misses_only_a_row_whose_transaction_was_open_as_a_page_passed_it(
    committed_client: AsyncClient, committed_app: FastAPI
) -> None:
    """PostgreSQL hands an id out at INSERT and shows the row at COMMIT: a row whose
    transaction took its id before those a page shows, and committed once the page was
    read, lies behind every next link given. So a walk sees every row committed before
    it began, once (paging.py), and may miss one created while it passed: this one."""
    database = committed_app.state.database
    early = [await create(committed_client, f"early-{n}") for n in range(2)]
    late = await database.begin(name="a slow create")
    try:
        late_id = await database.run(late, insert_late)
        after = await create(committed_client, "after")  # the next id, committed at once
        first = (await committed_client.get("/items", params={"limit": 3})).json()
    finally:
        await database.end(late, commit=True)
    walk = [first, *await pages_of(committed_client, first["next"])]
    again = await pages_of(committed_client, "/items?limit=3")

    seen = [item["id"] for page in walk for item in page["items"]]
    assert seen == [early[0]["id"], early[1]["id"], after["id"]]  # once each, in id order
    assert late_id < after["id"]
    assert late_id not in seen  # behind the next link when it committed
    assert late_id in [item["id"] for page in again for item in page["items"]]
{% else %}
async def test_a_walk_misses_no_row_however_writers_interleave(
    committed_client: AsyncClient, committed_app: FastAPI
) -> None:
    """SQLite has one writer at a time: a create waits for the transaction before it, so
    ids are committed in their order, and a walk misses nothing created as it goes."""
    database = committed_app.state.database
    early = [await create(committed_client, f"early-{n}") for n in range(2)]
    late = await database.begin(name="a slow create")
    try:
        late_id = await database.run(late, insert_late)
        after = asyncio.create_task(create(committed_client, "after"))  # waits for the lock
        first = (await committed_client.get("/items", params={"limit": 1})).json()
    finally:
        await database.end(late, commit=True)
    walk = [first, *await pages_of(committed_client, first["next"])]

    seen = [item["id"] for page in walk for item in page["items"]]
    assert seen[:3] == [early[0]["id"], early[1]["id"], late_id]
    # Created meanwhile, it lies past every row the walk had seen: never behind a link.
    assert (await after)["id"] > max(seen[:3])
{% endif %}


async def test_a_cursor_outlives_the_row_it_names(client: AsyncClient) -> None:
    created = [await create(client, f"item-{n}") for n in range(3)]
    first = (await client.get("/items", params={"limit": 1})).json()
    assert (await client.delete(f"/items/{created[0]['id']}")).status_code == 204

    rest = await pages_of(client, first["next"])

    assert [item for page in rest for item in page["items"]] == created[1:]


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
