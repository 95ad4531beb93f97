"""A restart, pg_terminate_backend or an idle timeout costs no failed request.

Before lending a pooled connection again the pool checks it (``db/engine.py``):
one the server closed is noticed without a round trip and replaced; one idle
longer than ``DB_PING_AFTER`` seconds is pinged, and replaced if the ping fails.
"""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient

from {{ cookiecutter.package_name }}.settings import Settings

from .support import client_of, create_items, drop_the_services_connections, running_app


async def test_requests_succeed_after_the_server_drops_the_pooled_connections(
    committed_app: FastAPI,
    committed_client: AsyncClient,
    settings: Settings,
) -> None:
    for _ in range(3):
        assert (await committed_client.get("/items")).status_code == 200
    assert committed_app.state.database.engine.pool.checkedin() >= 1

    await drop_the_services_connections(settings.database_url)

    await create_items(committed_client, "after", 5)
    listed = await committed_client.get("/items")
    assert listed.status_code == 200
    assert len(listed.json()["items"]) == 5


@pytest.fixture
async def pinging_app(settings: Settings, request: pytest.FixtureRequest) -> AsyncIterator[FastAPI]:
    """The app with ``DB_PING_AFTER`` as the test's parameter, and a pool of one connection."""
    update = {"db_ping_after": request.param, "db_pool_size": 1, "db_max_overflow": 0}
    async with running_app(settings, **update) as app:
        yield app


def count_pings(app: FastAPI, monkeypatch: pytest.MonkeyPatch, *, fail: bool) -> list[Any]:
    """Every ping the pool sends from now on; with ``fail``, each ping fails."""
    dialect = app.state.database.engine.dialect
    ping = dialect.do_ping
    pinged: list[Any] = []

    def counting_ping(dbapi_connection: Any) -> bool:
        pinged.append(dbapi_connection)
        if fail:
            raise ConnectionResetError("dropped without a word")
        return bool(ping(dbapi_connection))

    monkeypatch.setattr(dialect, "do_ping", counting_ping)
    return pinged


@pytest.mark.parametrize(("pinging_app", "pings"), [(10.0, 0), (0.0, 3)], indirect=["pinging_app"])
async def test_only_connections_idle_past_the_window_are_pinged(
    pinging_app: FastAPI, monkeypatch: pytest.MonkeyPatch, pings: int
) -> None:
    pinged = count_pings(pinging_app, monkeypatch, fail=False)
    async with client_of(pinging_app) as client:
        for _ in range(4):  # the first one connects
            assert (await client.get("/items")).status_code == 200

    assert len(pinged) == pings


@pytest.mark.parametrize("pinging_app", [0.0], indirect=True)
async def test_a_connection_that_fails_its_ping_is_replaced(
    pinging_app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with client_of(pinging_app) as client:
        assert (await client.get("/items")).status_code == 200
        pinged = count_pings(pinging_app, monkeypatch, fail=True)
        response = await client.get("/items")

    assert response.status_code == 200
    assert len(pinged) == 1  # a new connection needs no ping
