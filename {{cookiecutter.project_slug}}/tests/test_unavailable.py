{% set is_async = cookiecutter.driver == "async" %}
{% set aw = cookiecutter.__await %}
{% set Client = "AsyncClient" if is_async else "TestClient" %}
"""With the database unreachable: quick 503s with a JSON detail, never a hang or a traceback."""

import time
{% if is_async %}
from collections.abc import AsyncIterator
{% endif %}

import pytest
from fastapi import FastAPI
{% if is_async %}
from httpx2 import ASGITransport, AsyncClient
{% else %}
from fastapi.testclient import TestClient
{% endif %}

from {{ cookiecutter.package_name }}.settings import Settings

{% if cookiecutter.database == "sqlite" and is_async %}
# After a failed connect, aiosqlite's worker thread may hand its last result to
# the test's event loop after that loop has closed (aiosqlite issue #241).
pytestmark = pytest.mark.filterwarnings(
    r"ignore:Exception in thread .*\(_connection_worker_thread\)"
    ":pytest.PytestUnhandledThreadExceptionWarning"
)

{% endif %}
POOL_TIMEOUT = 2.0
{% if cookiecutter.database == "postgresql" %}
# Nothing listens on port 1.
UNREACHABLE_URL = "postgresql+{{ 'asyncpg' if is_async else 'psycopg' }}://postgres@127.0.0.1:1/nowhere"
{% else %}
# A file in a directory that does not exist cannot be opened.
UNREACHABLE_URL = "sqlite+{{ 'aiosqlite' if is_async else 'pysqlite' }}:////nonexistent-directory/nowhere.db"
{% endif %}


@pytest.fixture
def settings() -> Settings:
    return Settings(database_url=UNREACHABLE_URL, db_pool_timeout=POOL_TIMEOUT)


@pytest.fixture
{% if is_async %}
async def client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(transport=ASGITransport(app), base_url="http://test") as client:
        yield client
{% else %}
def client(app: FastAPI) -> TestClient:
    return TestClient(app)
{% endif %}


{{ cookiecutter.__async }}def test_live_does_not_touch_the_database(client: {{ Client }}) -> None:
    response = {{ aw }}client.get("/health")

    assert response.status_code == 200


{{ cookiecutter.__async }}def test_not_ready(client: {{ Client }}) -> None:
    response = {{ aw }}client.get("/health/ready")

    assert response.status_code == 503
    assert response.json() == {"detail": "The database does not answer."}


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
{{ cookiecutter.__async }}def test_data_endpoints_answer_503_quickly(
    client: {{ Client }}, method: str, path: str, body: object
) -> None:
    started = time.monotonic()
    response = {{ aw }}client.request(method, path, json=body)

    assert response.status_code == 503
    assert response.json() == {"detail": "The database is unavailable, try again later."}
    assert time.monotonic() - started < POOL_TIMEOUT + 1
