{% set is_async = cookiecutter.driver == "async" %}
"""With the database unreachable: quick 503s with a JSON detail, never a hang or a traceback."""

{% if cookiecutter.database == "sqlite" and is_async %}
import asyncio
import threading
{% endif %}
import time
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient

from {{ cookiecutter.package_name }}.settings import Settings

from .support import UNREACHABLE_URL, client_of, settings_for

POOL_TIMEOUT = 2.0


@pytest.fixture
def settings() -> Settings:
    return settings_for(UNREACHABLE_URL, db_pool_timeout=POOL_TIMEOUT)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with client_of(app) as client:
        yield client
{% if cookiecutter.database == "sqlite" and is_async %}
    # After a failed connect aiosqlite stops its worker thread without waiting
    # for it; let it finish while this test's event loop still runs, or it
    # reports to a closed loop (aiosqlite issue #241).
    for thread in threading.enumerate():
        if thread.name.endswith("(_connection_worker_thread)"):
            await asyncio.to_thread(thread.join, 5)
{% endif %}


async def test_live_does_not_touch_the_database(client: AsyncClient) -> None:
    response = await client.get("/health")

    assert response.status_code == 200


async def test_not_ready(client: AsyncClient) -> None:
    response = await client.get("/health/ready")

    assert response.status_code == 503
    assert response.json() == {"detail": "The database is unavailable, try again later."}
    assert response.headers["retry-after"] == "5"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/items", None),
        ("GET", "/items/1", None),
        ("POST", "/items", {"name": "Widget"}),
        ("POST", "/items/bulk", [{"name": "Widget"}]),
        ("PATCH", "/items/1", {"name": "Widget"}),
        ("DELETE", "/items/1", None),
    ],
)
async def test_data_endpoints_answer_503_quickly(
    client: AsyncClient, method: str, path: str, body: object
) -> None:
    started = time.monotonic()
    response = await client.request(method, path, json=body)

    assert response.status_code == 503
    assert response.json() == {"detail": "The database is unavailable, try again later."}
    assert time.monotonic() - started < POOL_TIMEOUT + 1
