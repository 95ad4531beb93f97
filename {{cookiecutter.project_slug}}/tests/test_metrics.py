"""``GET /metrics`` (see metrics.py): requests, the connection pool{{ ", several workers" if cookiecutter.workers }}."""

import asyncio
{% if cookiecutter.workers %}
import signal
import time
{% endif %}
from collections.abc import AsyncIterator
{% if cookiecutter.workers %}
from pathlib import Path
{% endif %}

{% if cookiecutter.workers %}
import httpx2
{% endif %}
import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from {{ cookiecutter.package_name }}.settings import Settings

{% if cookiecutter.workers %}
from .support import client_of, running_app, settings_for, start_server
{% else %}
from .support import client_of, running_app, settings_for
{% endif %}


def metric(exposition: str, name: str, **labels: str) -> float:
    """The sum of the samples ``name`` whose labels include ``labels``."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


async def scrape(client: AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_metrics_count_requests_by_method_route_and_status(client: AsyncClient) -> None:
    before = await scrape(client)
    for _ in range(3):
        assert (await client.get("/items/999999")).status_code == 404
    assert (await client.get("/no/such/path")).status_code == 404
    assert (await client.request("BREW", "/items")).status_code == 405
    after = await scrape(client)

    def grew(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    item = {"method": "GET", "route": "/items/{item_id}", "status": "404"}
    assert grew("http_requests_total", **item) == 3
    assert grew("http_request_duration_seconds_count", **item) == 3
    assert grew("http_request_duration_seconds_sum", **item) > 0
    assert grew("http_requests_total", route="<unmatched>", status="404") == 1
    assert grew("http_requests_total", method="OTHER", route="/items", status="405") == 1

    # Each request's statements: 3 requests, at least one SELECT each; none for a 405.
    route = {"method": "GET", "route": "/items/{item_id}"}
    assert grew("http_request_db_statements_count", **route) == 3
    assert grew("http_request_db_statements_sum", **route) >= 3
    assert grew("http_request_db_statements_sum", method="OTHER", route="/items") == 0


async def test_the_api_documents_are_counted_as_themselves(client: AsyncClient) -> None:
    before = await scrape(client)
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert (await client.get(path)).status_code == 200
    after = await scrape(client)

    for route in ("/docs", "/redoc", "/openapi.json"):
        counted = metric(after, "http_requests_total", route=route, status="200")
        assert counted - metric(before, "http_requests_total", route=route, status="200") == 1


@pytest.mark.parametrize(
    ("authorization", "status"),
    [(None, 401), ("Bearer wrong", 401), ("s3cret", 401), ("Bearer s3cret", 200)],
)
async def test_metrics_with_a_token_answer_only_its_bearer(
    settings: Settings, authorization: str | None, status: int
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    token = SecretStr("s3cret")
    async with running_app(settings, metrics_token=token) as app, client_of(app) as client:
        response = await client.get("/metrics", headers=headers)

    assert response.status_code == status
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
        assert "s3cret" not in response.text


def test_an_empty_metrics_token_is_no_token(settings: Settings) -> None:
    assert settings_for(settings.database_url, metrics_token="").metrics_token is None


@pytest.fixture
async def one_connection_app(settings: Settings) -> AsyncIterator[FastAPI]:
    async with running_app(settings, db_pool_size=1, db_max_overflow=0) as app:
        yield app


async def test_metrics_show_the_connection_pool(one_connection_app: FastAPI) -> None:
    database = one_connection_app.state.database
    async with client_of(one_connection_app) as client:
        idle = await scrape(client)
        async with database.open_session():
            waiter = asyncio.create_task(database.ping())
            await asyncio.sleep(0)  # the task runs until it waits for the connection
            busy = await scrape(client)
        await waiter
        done = await scrape(client)

    assert metric(idle, "db_pool_size") == 1
    assert metric(idle, "db_pool_checked_out") == 0
    assert metric(busy, "db_pool_checked_out") == 1
    assert metric(busy, "db_pool_waiting") == 1
    assert metric(busy, "db_pool_overflow") == 0
    assert metric(done, "db_pool_checked_out") == 0
    assert metric(done, "db_pool_waiting") == 0
{% if cookiecutter.workers %}


def test_workers_report_their_metrics_together(database_url: str, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    pool = {"DB_POOL_SIZE": "3", "DB_MAX_OVERFLOW": "1"}
    folder = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "server-metrics")}
    server, port = start_server(database_url, log, "--workers", "2", env={**pool, **folder})
    base_url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(20):  # a new connection each: the workers take turns accepting
            assert httpx2.get(f"{base_url}/items/999999").status_code == 404
        # A request is counted once its last byte went out: let the last one land.
        time.sleep(0.5)
        scrapes = [httpx2.get(f"{base_url}/metrics").text for _ in range(10)]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    route = {"route": "/items/{item_id}", "status": "404"}
    # Whichever worker answers a scrape, it reports both workers' numbers.
    assert {metric(text, "http_requests_total", **route) for text in scrapes} == {20}
    assert {metric(text, "db_pool_size") for text in scrapes} == {6}
    # A worker that stopped took its gauges with it.
    assert not list(tmp_path.glob("server-metrics/gauge_live*.db"))
{% endif %}
