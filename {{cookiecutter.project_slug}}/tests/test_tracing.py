{% set is_async = cookiecutter.driver == "async" %}
"""Traces (tracing.py): the spans of a request, its units of work and statements, in the
SDK's in-memory exporter (``spans``: tests/spans.py); and, end to end, a server
exporting over OTLP to a collector run by the test."""

import json
import signal
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx2
import pytest
from fastapi import FastAPI
from httpx2 import AsyncClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.trace import SpanKind, StatusCode
{% if cookiecutter.jobs %}
from sqlalchemy import select
{% endif %}

from {{ cookiecutter.package_name }} import tracing
{% if cookiecutter.jobs %}
from {{ cookiecutter.package_name }}.items.jobs import announce_change
{% endif %}
from {{ cookiecutter.package_name }}.items.models import Item
{% if cookiecutter.jobs %}
from {{ cookiecutter.package_name }}.jobs import Handler, worker
from {{ cookiecutter.package_name }}.jobs.models import Job
{% endif %}
from {{ cookiecutter.package_name }}.session import SessionDep
from {{ cookiecutter.package_name }}.settings import Settings

from .support import start_server

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@pytest.fixture(autouse=True)
def routes(app: FastAPI) -> None:
    """A resource a user adds, a call to another service, and a write whose commit fails."""

    @app.get("/test/widgets/{widget_id}")
    {{ cookiecutter.__async }}def get_widget(widget_id: int, session: SessionDep) -> None:
        {{ cookiecutter.__await }}session.get(Item, widget_id)

    @app.get("/test/traceparent")
    def traceparent() -> str | None:
        return tracing.traceparent()  # what a call to another service would send on

    @app.post("/test/insert-null-at-commit", status_code=201)
    {{ cookiecutter.__async }}def insert_null_at_commit(session: SessionDep) -> None:
        session.add(Item(name=None))  # violates NOT NULL, in the commit's flush


def request_span(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    (span,) = [s for s in spans if s.kind is SpanKind.SERVER and s.name == name]
    return span


def children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    found = [
        s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id
    ]
    return sorted(found, key=lambda s: s.start_time or 0)


def tree(spans: list[ReadableSpan], root: ReadableSpan, depth: int = 0) -> str:
    """``root`` and what it contains, one span a line, indented by depth."""
    lines = ["  " * depth + root.name]
    lines += [tree(spans, child, depth + 1) for child in children(spans, root)]
    return "\n".join(lines)


def only_statements_under(spans: list[ReadableSpan], unit: ReadableSpan) -> list[str]:
    statements = children(spans, unit)
    assert all(s.kind is SpanKind.CLIENT for s in statements)
    return [s.name for s in statements]


async def test_a_create_is_one_tree_statements_under_its_unit_of_work(
    committed_client: AsyncClient, spans: Callable[[], list[ReadableSpan]]
) -> None:
    response = await committed_client.post("/items", json={"name": "lamp"})

    assert response.status_code == 201
    found = spans()
    request = request_span(found, "POST /items")
    assert request.parent is None
    assert request.context is not None
    assert {s.context.trace_id for s in found if s.context} == {request.context.trace_id}
    (unit,) = children(found, request)
    assert unit.name == "unit of work POST /items"
    assert unit.attributes == {
        "db.unit.name": "POST /items",
        "db.unit.outcome": "committed",
    }
    assert only_statements_under(found, unit) == ["INSERT items"]
    insert = children(found, unit)[0]
    assert insert.attributes is not None
    assert insert.attributes["db.system.name"] == "{{ cookiecutter.database }}"
    assert str(insert.attributes["db.query.text"]).startswith("INSERT INTO items")
    print(tree(found, request))  # the closing note's span tree: pytest -s -k one_tree


async def test_a_read_and_a_users_new_route_are_traced_the_same_way(
    committed_client: AsyncClient, spans: Callable[[], list[ReadableSpan]]
) -> None:
    response = await committed_client.get("/test/widgets/1")

    assert response.status_code == 200
    found = spans()
    request = request_span(found, "GET /test/widgets/{widget_id}")
    (unit,) = children(found, request)
    assert unit.attributes is not None
    assert unit.attributes["db.unit.outcome"] == "closed"  # read-only: nothing to commit
    assert only_statements_under(found, unit) == ["SELECT items"]


async def test_a_failed_commit_marks_its_spans_as_errors(
    committed_client: AsyncClient, spans: Callable[[], list[ReadableSpan]]
) -> None:
    response = await committed_client.post("/test/insert-null-at-commit")

    assert response.status_code == 500
    found = spans()
    request = request_span(found, "POST /test/insert-null-at-commit")
    (unit,) = children(found, request)
    (insert,) = children(found, unit)
    assert unit.attributes is not None
    assert insert.attributes is not None
    assert unit.attributes["db.unit.outcome"] == "rolled back"
    assert unit.attributes["db.unit.failure"] == "internal"
    assert insert.attributes["db.failure"] == "internal"
    assert {span.status.status_code for span in (request, unit, insert)} == {StatusCode.ERROR}


async def test_a_refused_write_is_a_failure_but_not_a_failed_commit(
    client: AsyncClient, spans: Callable[[], list[ReadableSpan]]
) -> None:
    await client.post("/items", json={"name": "lamp"})
    response = await client.post("/items", json={"name": "lamp"})

    assert response.status_code == 409
    found = spans()
    request = [s for s in found if s.name == "POST /items"][-1]
    (unit,) = children(found, request)
    assert unit.attributes is not None
    assert unit.attributes["db.unit.failure"] == "duplicate"
    assert unit.attributes["db.unit.outcome"] == "rolled back"
    assert unit.status.status_code is StatusCode.UNSET
    assert request.status.status_code is StatusCode.UNSET  # a 4xx is the client's


async def test_no_parameter_value_appears_in_any_span(
    client: AsyncClient, spans: Callable[[], list[ReadableSpan]]
) -> None:
    name, description = "Parameter-7f3a91", "Description-c2d84e"
    created = await client.post("/items", json={"name": name, "description": description})
    item_id = created.json()["id"]
    await client.patch(f"/items/{item_id}", json={"description": description + "-2"})
    await client.get(f"/items/{item_id}")
    await client.post("/items", json={"name": name})  # refused: the error's text too

    values = [
        str(value)
        for span in spans()
        for value in [
            span.name,
            span.status.description,
            *(span.attributes or {}).values(),
            *(v for e in span.events for v in (e.attributes or {}).values()),
        ]
    ]
    assert len(values) > 20
    assert not [value for value in values if name in value or description in value]


async def test_the_callers_trace_is_continued(
    client: AsyncClient, spans: Callable[[], list[ReadableSpan]]
) -> None:
    traceparent = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
    response = await client.get("/items/1", headers={"traceparent": traceparent})

    assert response.status_code == 404
    found = spans()
    request = request_span(found, "GET /items/{item_id:id}")
    assert request.parent is not None
    assert request.parent.is_remote
    assert format(request.parent.span_id, "016x") == CALLER_SPAN
    assert {format(s.context.trace_id, "032x") for s in found if s.context} == {CALLER_TRACE}


async def test_the_trace_is_passed_on_from_within_the_request(
    client: AsyncClient, spans: Callable[[], list[ReadableSpan]]
) -> None:
    traceparent = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
    response = await client.get("/test/traceparent", headers={"traceparent": traceparent})

    request = request_span(spans(), "GET /test/traceparent")
    assert request.context is not None
    assert response.json() == f"00-{CALLER_TRACE}-{request.context.span_id:016x}-01"


async def test_a_background_task_has_its_span_in_its_requests_trace(
    committed_client: AsyncClient, spans: Callable[[], list[ReadableSpan]]
) -> None:
    item_id = (await committed_client.post("/items", json={"name": "lamp"})).json()["id"]
    response = await committed_client.patch(f"/items/{item_id}", json={"description": "red"})

    assert response.status_code == 200
    found = spans()
    request = request_span(found, "PATCH /items/{item_id:id}")
    assert [s.name for s in children(found, request)] == [
        "unit of work PATCH /items/{item_id}",
        "BackgroundTask announce_change",
    ]
{% if cookiecutter.jobs %}


async def handle_a_recorded_job(client: AsyncClient, settings: Settings) -> None:
    """An item changed, which records a job; the job handled by a worker's runtime."""
    item_id = (await client.post("/items", json={"name": "lamp"})).json()["id"]
    await client.patch(f"/items/{item_id}", json={"description": "red"})
    _broker, runtime = worker.connect(settings)  # the broker is not used: no Redis needed
    try:
        async with runtime.database.open_session(writes=False) as session:
            job = await runtime.database.run(session, lambda s: s.scalars(select(Job)).one())
        await runtime.handle(job.id)
    finally:
        await runtime.database.dispose()


async def test_a_job_has_a_trace_of_its_own_linked_to_the_request_that_recorded_it(
    committed_client: AsyncClient, settings: Settings, spans: Callable[[], list[ReadableSpan]]
) -> None:
    await handle_a_recorded_job(committed_client, settings)

    found = spans()
    request = request_span(found, "PATCH /items/{item_id:id}")
    (handled,) = [s for s in found if s.name == f"job {announce_change.name}"]
    assert handled.kind is SpanKind.CONSUMER
    assert handled.parent is None
    assert handled.context is not None
    assert request.context is not None
    assert [link.context.span_id for link in handled.links] == [request.context.span_id]
    (unit,) = children(found, handled)
    assert unit.attributes is not None
    assert unit.attributes["db.unit.outcome"] == "committed"
    assert only_statements_under(found, unit)[0] == "UPDATE jobs"


async def test_a_failed_try_marks_its_jobs_span_as_an_error(
    committed_client: AsyncClient,
    settings: Settings,
    spans: Callable[[], list[ReadableSpan]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    {{ cookiecutter.__async }}def fails(*_: object) -> None:
        raise RuntimeError("the receiver is down")

    monkeypatch.setitem(worker.HANDLERS, announce_change.name, Handler(announce_change.name, fails))
    await handle_a_recorded_job(committed_client, settings)

    (handled,) = [s for s in spans() if s.name == f"job {announce_change.name}"]
    assert handled.status.status_code is StatusCode.ERROR
    assert handled.status.description == "RuntimeError"  # its message may quote values
    assert handled.events == ()
{% endif %}


def test_without_an_endpoint_nothing_is_set_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    assert tracing.provider_from_environment() is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert isinstance(tracing.provider_from_environment(), TracerProvider)
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert tracing.provider_from_environment() is None


class Collector(ThreadingHTTPServer):
    """An OTLP/HTTP collector: keeps the spans it is sent."""

    def __init__(self) -> None:
        self.spans: list[dict[str, object]] = []
        super().__init__(("127.0.0.1", 0), _CollectorHandler)


class _CollectorHandler(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/v1/traces":
            export = ExportTraceServiceRequest.FromString(body)
            for resource in export.resource_spans:
                service = {a.key: a.value.string_value for a in resource.resource.attributes}
                for scope in resource.scope_spans:
                    for span in scope.spans:
                        name, trace_id, span_id = span.name, span.trace_id.hex(), span.span_id.hex()
                        self.server.spans.append(
                            {"name": name, "trace_id": trace_id, "span_id": span_id, **service}
                        )
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_a_server_exports_its_spans_and_logs_their_ids(
    collector: Collector, settings: Settings, log_format: str, tmp_path: Path
) -> None:
    log = tmp_path / "server.log"
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.server_port}",
        "OTEL_BSP_SCHEDULE_DELAY": "60000",  # sent only as the server stops
        "LOG_FORMAT": log_format,
    }
    server, port = start_server(settings.database_url, log, env=env)
    traceparent = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
    try:
        response = httpx2.get(
            f"http://127.0.0.1:{port}/items/1", headers={"traceparent": traceparent}
        )
    finally:
        server.send_signal(signal.SIGTERM)  # the spans still held are sent as it exits
        server.wait(timeout=30)

    assert response.status_code == 404
    exported = [span for span in collector.spans if span["trace_id"] == CALLER_TRACE]
    request = next(span for span in exported if span["name"] == "GET /items/{item_id:id}")
    assert request["service.name"] == "{{ cookiecutter.project_slug }}"
    assert {span["name"] for span in exported} >= {
        "GET /items/{item_id:id}",
        "unit of work GET /items/{item_id}",
        "SELECT items",
    }
    request_id = response.headers["x-request-id"]
    lines = log.read_text().splitlines()
    if log_format == "json":
        (access,) = [
            record
            for record in map(json.loads, lines)
            if record["request_id"] == request_id and record["logger"].endswith(".access")
        ]
        assert (access["trace_id"], access["span_id"]) == (CALLER_TRACE, request["span_id"])
    else:
        (access,) = [line for line in lines if f"[{request_id} " in line and ".access:" in line]
        assert f"[{request_id} {CALLER_TRACE} {request['span_id']}]" in access
