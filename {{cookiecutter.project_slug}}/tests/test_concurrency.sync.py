{% set is_pg = cookiecutter.database == "postgresql" %}
"""Many requests at once: one session each, and every connection back in the pool after."""

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx2 import ASGITransport, AsyncClient
{% if is_pg %}
from sqlalchemy import delete, func, select, text
{% else %}
from sqlalchemy import delete, func, select
{% endif %}

{% if is_pg %}
from {{ cookiecutter.package_name }}.db.engine import APPLICATION_NAME
{% endif %}
from {{ cookiecutter.package_name }}.items.models import Item
from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.settings import Settings

REQUESTS = 60


def test_concurrent_requests_leave_no_connection_checked_out(
    committed_app: FastAPI, settings: Settings
) -> None:
    engine = committed_app.state.engine
    client = TestClient(committed_app)

    def write(n: int) -> int:
        return client.post("/items", json={"name": f"item-{n}"}).status_code

    def read(_: int) -> int:
        return client.get("/items").status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        writes = pool.map(write, range(REQUESTS))
        reads = pool.map(read, range(REQUESTS))
        statuses = [*writes, *reads]

    assert statuses == [201] * REQUESTS + [200] * REQUESTS
    assert engine.pool.checkedout() == 0
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(Item)) == REQUESTS
{% if is_pg %}
        # The server's view of our other connections: none is left inside a
        # transaction, and there are no more than the pool allows.
        result = connection.execute(
            text(
                "SELECT state FROM pg_stat_activity WHERE datname = current_database()"
                " AND application_name = :name AND pid <> pg_backend_pid()"
            ),
            {"name": APPLICATION_NAME},
        )
        states = result.scalars().all()
    assert "idle in transaction" not in states
    assert len(states) < settings.db_pool_size + settings.db_max_overflow
{% endif %}


def test_a_saturated_threadpool_does_not_stall_the_commits(settings: Settings) -> None:
    """More requests than FastAPI's 40 threads, on one event loop as uvicorn runs it.

    Most threads end up waiting for one of the two connections; the sessions
    holding them must still be able to commit and give them back.
    """
    tight = settings.model_copy(
        update={"db_pool_size": 2, "db_max_overflow": 0, "db_pool_timeout": 5}
    )
    app = create_app(tight)
    requests = 100

    async def burst() -> list[int]:
        async with app.router.lifespan_context(app):
            transport = ASGITransport(app)
            async with AsyncClient(transport=transport, base_url="http://test") as client:
                posts = [
                    client.post("/items", json={"name": f"burst-{n}"}) for n in range(requests)
                ]
                responses = await asyncio.gather(*posts)
            with app.state.engine.begin() as connection:
                connection.execute(delete(Item))
        return [response.status_code for response in responses]

    started = time.monotonic()
    statuses = asyncio.run(burst())

    assert statuses == [201] * requests
    assert time.monotonic() - started < tight.db_pool_timeout
