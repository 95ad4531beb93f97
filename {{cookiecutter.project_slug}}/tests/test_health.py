{% set aw = cookiecutter.__await %}
{% set Client = "AsyncClient" if cookiecutter.driver == "async" else "TestClient" %}
"""Liveness and readiness, with the database up."""

{% if cookiecutter.driver == "async" %}
from httpx2 import AsyncClient
{% else %}
from fastapi.testclient import TestClient
{% endif %}


{{ cookiecutter.__async }}def test_live(client: {{ Client }}) -> None:
    response = {{ aw }}client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


{{ cookiecutter.__async }}def test_ready_when_the_database_answers(client: {{ Client }}) -> None:
    response = {{ aw }}client.get("/health/ready")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
