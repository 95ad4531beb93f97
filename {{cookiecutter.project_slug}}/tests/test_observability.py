{% set ids = " - -" if cookiecutter.tracing else "" %}
"""Request ids, log lines and the access log (see observability.py and logs.py)."""

import json
import logging
import re
import signal
import sys
import uuid
from logging.config import DictConfigurator
from pathlib import Path

import httpx2
import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient

from {{ cookiecutter.package_name }} import observability
{% if cookiecutter.session_strategy == "middleware" %}
from {{ cookiecutter.package_name }}.items.models import Item
{% endif %}
from {{ cookiecutter.package_name }}.logs import TRACEBACK_FRAMES, logging_config
{% if cookiecutter.session_strategy == "middleware" %}
from {{ cookiecutter.package_name }}.session import SessionDep
{% endif %}
from {{ cookiecutter.package_name }}.settings import Settings

from .support import UNREACHABLE_URL, client_of, running_app, start_server

HEX_ID = re.compile(r"[0-9a-f]{32}")
CRASHED = "9c1e5b6f0d2a4e8b8f3c7a1d2e4f6a8b"
CONFLICTED = "0f4e2d6c8b1a3e5d7c9b2a4f6e8d0c1b"


async def test_a_request_without_an_id_gets_a_new_one(client: AsyncClient) -> None:
    first = await client.get("/health")
    second = await client.get("/health")

    assert HEX_ID.fullmatch(first.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


# Fixed, so that every process collects the same tests (pytest-xdist).
@pytest.mark.parametrize(
    "given",
    [
        "5f0c6a1e9b2d4c7e8a3f1b6d2e9c4a70",  # nginx's $request_id
        "1b4e28ba-2fa1-11d2-883f-0016d3cca427",  # a UUID
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",  # AWS
        "105445aa7843bc8bf206b12000100000/1;o=1",  # Google Cloud's trace context
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # a W3C traceparent
        "x" * 200,
    ],
)
async def test_a_request_keeps_the_id_it_brings(client: AsyncClient, given: str) -> None:
    response = await client.get("/health", headers={"X-Request-ID": given})

    assert response.headers["x-request-id"] == given


@pytest.mark.parametrize("given", ["'; DROP TABLE items; --", "forged\tline", "x" * 201, "naïve"])
async def test_an_id_that_is_not_one_is_replaced(client: AsyncClient, given: str) -> None:
    response = await client.get("/health", headers=[(b"X-Request-ID", given.encode())])

    assert response.status_code == 200
    assert HEX_ID.fullmatch(response.headers["x-request-id"])


async def test_the_api_documents_can_be_switched_off(settings: Settings) -> None:
    async with running_app(settings, api_docs=False) as app, client_of(app) as client:
        paths = ("/docs", "/redoc", "/openapi.json")
        answers = [(await client.get(path)).status_code for path in paths]
        assert (await client.get("/health")).status_code == 200

    assert answers == [404, 404, 404]


class LinesWithTheirRequestIds(logging.Handler):
    """Every line the service logs, with the request id current when it was."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[str, str, str | None]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("{{ cookiecutter.package_name }}."):
            self.lines.append((record.name, record.getMessage(), observability.request_id.get()))


async def test_the_middleware_reports_each_answer_as_the_client_got_it(
    committed_app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    """What the order of main.py's middleware stack promises: every line a request logs
    carries its id, and the access log has the status the client got{% if cookiecutter.session_strategy == "middleware" %}, that of a
    commit that failed included{% endif %}."""

    @committed_app.get("/test/bug")
    async def bug() -> None:
        raise RuntimeError("A bug.")
{% if cookiecutter.session_strategy == "middleware" %}

    @committed_app.post("/test/insert-at-commit/{name}", status_code=201)
    {{ cookiecutter.__async }}def insert_at_commit(name: str, session: SessionDep) -> None:
        session.add(Item(name=name))  # no flush: the INSERT runs in the commit, which fails
{% endif %}

    caplog.set_level(logging.INFO)
    seen = LinesWithTheirRequestIds()
    logging.getLogger().addHandler(seen)
    try:
        async with client_of(committed_app) as client:
            headers = {observability.REQUEST_ID_HEADER: CRASHED}
            crashed = await client.get("/test/bug", headers=headers)
{% if cookiecutter.session_strategy == "middleware" %}
            assert (await client.post("/test/insert-at-commit/Widget")).status_code == 201
            headers = {observability.REQUEST_ID_HEADER: CONFLICTED}
            conflicted = await client.post("/test/insert-at-commit/Widget", headers=headers)
{% endif %}
    finally:
        logging.getLogger().removeHandler(seen)

    assert crashed.status_code == 500
    logged = [(name, message) for name, message, line_id in seen.lines if line_id == CRASHED]
    assert [name for name, _ in logged] == [
        "{{ cookiecutter.package_name }}.errors",
        "{{ cookiecutter.package_name }}.access",
    ]
    assert logged[1][1].startswith("GET /test/bug 500 ")
{% if cookiecutter.session_strategy == "middleware" %}
    assert conflicted.status_code == 409
    [*_, access] = [message for _, message, line_id in seen.lines if line_id == CONFLICTED]
    assert access.startswith("POST /test/insert-at-commit/{name} 409 ")
{% endif %}


async def test_the_access_line_counts_the_statements_each_request_sent(
    committed_client: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    created = await committed_client.post("/items", json={"name": "Counted"})
    item = f"/items/{created.json()['id']}"
    access = "{{ cookiecutter.package_name }}.access"

    with caplog.at_level(logging.INFO, logger=access):
        await committed_client.get(item)
        await committed_client.get(f"{item}/history")
        await committed_client.get("/health")

    get, history, health = [record for record in caplog.records if record.name == access]
    sent = [vars(record)["statements"] for record in (get, history, health)]
    assert sent[0] > 0
    assert sent[1] == sent[0] + 1  # its events, in one more
    assert sent[2] == 0
    assert get.getMessage().endswith(f" sql={sent[0]}")


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_every_log_line_of_a_request_carries_its_id(log_format: str, tmp_path: Path) -> None:
    # The database is unreachable: the request logs a warning before the access line.
    log = tmp_path / "server.log"
    # A misspelt setting is warned of at start in the same format.
    env = {"LOG_FORMAT": log_format, "DB_POOLSIZE": "3"}
    server, port = start_server(UNREACHABLE_URL, log, env=env)
    sent_id = uuid.uuid4().hex
    try:
        response = httpx2.get(f"http://127.0.0.1:{port}/items/1", headers={"X-Request-ID": sent_id})
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    assert response.status_code == 503
    assert response.headers["x-request-id"] == sent_id
    lines = log.read_text().splitlines()
    if log_format == "json":
        records = [json.loads(line) for line in lines]  # every line is JSON, uvicorn's too
        ours = [record for record in records if record["request_id"] == sent_id]
        assert [record["logger"] for record in ours] == [
            "{{ cookiecutter.package_name }}.errors",
            "{{ cookiecutter.package_name }}.access",
        ]
        assert ours[0]["level"] == "WARNING"
        access = ours[1]
        assert access["method"] == "GET"
        assert access["route"] == "/items/{item_id}"
        assert access["path"] == "/items/1"
        assert access["status"] == 503
        assert access["duration_ms"] > 0
        assert access["statements"] == 0  # none reached the database
        assert any(record["message"] == "Application startup complete." for record in records)
        assert records[0]["level"] == "WARNING"
        assert records[0]["message"].startswith("DB_POOLSIZE is not a setting of this service")
        # A line logged outside any request has no id.
        assert all(r["request_id"] == "-" for r in records if r["logger"].startswith("uvicorn"))
    else:
        assert re.search(r" WARNING \[-{{ ids }}\] [\w.]+: DB_POOLSIZE is not a setting", lines[0])
        ours = [line for line in lines if f"[{sent_id}{{ ids }}]" in line]
        assert len(ours) == 2
        assert " WARNING [" in ours[0]
        assert "Database unavailable" in ours[0]
        assert re.search(
            r" INFO    \[\w+{{ ids }}\] {{ cookiecutter.package_name }}\.access: GET /items/\{item_id\} 503 [\d.]+ ms sql=0$",
            ours[1],
        )


def ping(depth: int) -> int:
    return pong(depth - 1) if depth else 1 // depth


def pong(depth: int) -> int:
    return ping(depth)


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_an_error_deep_in_a_recursion_logs_its_last_frames(
    log_format: str, settings: Settings
) -> None:
    """Python folds a traceback's repeated lines, but not a recursion through two
    functions: without a bound, one request could write thousands of lines."""
    config = logging_config(settings.model_copy(update={"log_format": log_format}))
    formatter = DictConfigurator({}).configure_formatter(config["formatters"]["default"])
    try:
        ping(300)
    except ZeroDivisionError:
        record = logging.makeLogRecord({"msg": "failed", "exc_info": sys.exc_info()})
    for spec in config["filters"].values():  # the request id's, as the handler runs them
        DictConfigurator({}).configure_filter(spec).filter(record)

    logged = formatter.format(record)

    traceback = json.loads(logged)["exc_info"] if log_format == "json" else logged
    assert "ZeroDivisionError" in traceback
    assert traceback.count("File ") == TRACEBACK_FRAMES
