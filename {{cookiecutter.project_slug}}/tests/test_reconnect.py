"""A restart, pg_terminate_backend or an idle timeout costs no failed request.

The pool checks a connection before lending it (``pool_pre_ping``) and
replaces one the server has closed.
"""

from fastapi import FastAPI
from httpx2 import AsyncClient
from sqlalchemy import text

from {{ cookiecutter.package_name }}.db.engine import APPLICATION_NAME
from {{ cookiecutter.package_name }}.settings import Settings

from .conftest import ask_the_database

# Every connection of the service but the one asking.
TERMINATE = text(
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
    " WHERE datname = current_database() AND application_name = :name AND pid <> pg_backend_pid()"
)


async def test_requests_succeed_after_the_server_drops_the_pooled_connections(
    committed_app: FastAPI,
    committed_client: AsyncClient,
    settings: Settings,
) -> None:
    for _ in range(3):
        assert (await committed_client.get("/items")).status_code == 200
    assert committed_app.state.database.engine.pool.checkedin() >= 1

    dropped = await ask_the_database(settings.database_url, TERMINATE, name=APPLICATION_NAME)
    assert dropped >= 1

    for n in range(5):
        response = await committed_client.post("/items", json={"name": f"after-{n}"})
        assert response.status_code == 201, response.text
    listed = await committed_client.get("/items")
    assert listed.status_code == 200
    assert listed.json()["total"] == 5
