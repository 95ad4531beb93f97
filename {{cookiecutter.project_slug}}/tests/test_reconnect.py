{% set is_async = cookiecutter.driver == "async" %}
{% set aw = cookiecutter.__await %}
{% set Client = "AsyncClient" if is_async else "TestClient" %}
"""A restart, pg_terminate_backend or an idle timeout costs no failed request.

The pool checks a connection before lending it (``pool_pre_ping``) and
replaces one the server has closed.
"""

from fastapi import FastAPI
{% if is_async %}
from httpx2 import AsyncClient
{% else %}
from fastapi.testclient import TestClient
{% endif %}
from sqlalchemy import text

from {{ cookiecutter.package_name }}.db.engine import APPLICATION_NAME, build_engine
from {{ cookiecutter.package_name }}.settings import Settings

# Every connection of the service but the one asking.
TERMINATE = text(
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
    " WHERE datname = current_database() AND application_name = :name AND pid <> pg_backend_pid()"
)


{{ cookiecutter.__async }}def drop_every_connection(settings: Settings) -> int:
    engine = build_engine(settings)
    try:
        {{ "async " if is_async }}with engine.connect() as connection:
            dropped = {{ aw }}connection.scalar(TERMINATE, {"name": APPLICATION_NAME})
    finally:
        {{ aw }}engine.dispose()
    return dropped or 0


{{ cookiecutter.__async }}def test_requests_succeed_after_the_server_drops_the_pooled_connections(
    committed_app: FastAPI,
    committed_client: {{ Client }},
    settings: Settings,
) -> None:
    for _ in range(3):
        assert ({{ aw }}committed_client.get("/items")).status_code == 200
    assert committed_app.state.engine.pool.checkedin() >= 1

    assert {{ aw }}drop_every_connection(settings) >= 1

    for n in range(5):
        response = {{ aw }}committed_client.post("/items", json={"name": f"after-{n}"})
        assert response.status_code == 201, response.text
    listed = {{ aw }}committed_client.get("/items")
    assert listed.status_code == 200
    assert listed.json()["total"] == 5
