{% set is_pg = cookiecutter.database == "postgresql" %}
"""Many requests at once: one session each, and every connection back in the pool after."""

import asyncio
import time

from fastapi import FastAPI
from sqlalchemy import delete, func, select

from {{ cookiecutter.package_name }}.items.models import Item
from {{ cookiecutter.package_name }}.settings import Settings

{% if is_pg %}
from .support import client_of, connection_states, running_app
{% else %}
from .support import client_of, running_app
{% endif %}

REQUESTS = 60


async def test_concurrent_requests_leave_no_connection_checked_out(
    committed_app: FastAPI, settings: Settings
) -> None:
    engine = committed_app.state.database.engine
    async with client_of(committed_app) as client:
        writes = [client.post("/items", json={"name": f"item-{n}"}) for n in range(REQUESTS)]
        reads = [client.get("/items") for _ in range(REQUESTS)]
        responses = await asyncio.gather(*writes, *reads)

    assert [response.status_code for response in responses] == [201] * REQUESTS + [200] * REQUESTS
    assert engine.pool.checkedout() == 0
    {{ cookiecutter.__async }}with engine.connect() as connection:
        assert {{ cookiecutter.__await }}connection.scalar(select(func.count()).select_from(Item)) == REQUESTS
{% if is_pg %}
    # The server's view of our other connections: none is left inside a
    # transaction, and there are no more than the pool allows.
    states = await connection_states(engine)
    assert "idle in transaction" not in states
    assert len(states) < settings.db_pool_size + settings.db_max_overflow
{% endif %}


async def test_more_requests_than_threads_on_a_small_pool(settings: Settings) -> None:
    """More requests than FastAPI's 40 threads, on a 2-connection pool.

    Every request waits its turn for a connection, none of them inside the
    threadpool that runs the endpoints: all of them are served, in time.
    """
    tight = settings.model_copy(
        update={"db_pool_size": 2, "db_max_overflow": 0, "db_pool_timeout": 5}
    )
    requests = 100
    started = time.monotonic()
    async with running_app(tight) as app, client_of(app) as client:
        posts = [client.post("/items", json={"name": f"burst-{n}"}) for n in range(requests)]
        responses = await asyncio.gather(*posts)
        {{ cookiecutter.__async }}with app.state.database.engine.begin() as connection:
            {{ cookiecutter.__await }}connection.execute(delete(Item))

    assert [response.status_code for response in responses] == [201] * requests
    assert time.monotonic() - started < tight.db_pool_timeout


async def test_clients_writing_the_same_rows_all_succeed(committed_app: FastAPI) -> None:
    """40 clients at once creating items, and reading and updating the same 20."""
    async with client_of(committed_app) as client:
        rows = [await client.post("/items", json={"name": f"row-{n}"}) for n in range(20)]
        ids = [row.json()["id"] for row in rows]

        async def one_client(k: int) -> list[int]:
            statuses = []
            for step in range(10):
                item_url = f"/items/{ids[(k * 7 + step) % len(ids)]}"
                if (k + step) % 3 == 0:
                    response = await client.post("/items", json={"name": f"new-{k}-{step}"})
                elif (k + step) % 3 == 1:
                    response = await client.get(item_url)
                else:
                    response = await client.patch(item_url, json={"description": f"{k}-{step}"})
                statuses.append(response.status_code)
            return statuses

        answers = await asyncio.gather(*(one_client(k) for k in range(40)))

    assert {status for statuses in answers for status in statuses} <= {200, 201}


async def test_two_clients_racing_with_the_same_etag_cannot_both_win(
    committed_app: FastAPI,
) -> None:
    async with client_of(committed_app) as client:
        item = (await client.post("/items", json={"name": "Widget"})).json()
        seen = (await client.get(f"/items/{item['id']}")).headers["etag"]

        async def change(description: str, headers: dict[str, str]) -> int:
            body = {"description": description}
            response = await client.patch(f"/items/{item['id']}", json=body, headers=headers)
            return response.status_code

        with_etag = await asyncio.gather(*(change(f"c{n}", {"If-Match": seen}) for n in range(2)))
        without = await asyncio.gather(*(change(f"last{n}", {}) for n in range(2)))
        final = (await client.get(f"/items/{item['id']}")).json()

    assert sorted(with_etag) == [200, 412]  # no lost update: the loser is told
    assert without == [200, 200]  # without If-Match, the last writer wins
    assert final["description"] in {"last0", "last1"}
