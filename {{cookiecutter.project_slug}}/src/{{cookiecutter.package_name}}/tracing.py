"""Traces: OpenTelemetry spans for each request, its units of work and their statements.

Set up by the standard ``OTEL_*`` variables, read by the SDK from the environment (not
from ``.env``): ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``)
says where spans go, over OTLP/HTTP; ``OTEL_SERVICE_NAME`` (else ``{{ cookiecutter.project_slug }}``),
``OTEL_TRACES_SAMPLER`` and its argument, ``OTEL_BSP_*`` are the SDK's. With no endpoint
(or ``OTEL_SDK_DISABLED=true``) nothing is installed: no span is made, nothing is sent.

What a trace tells:

- **a request**: a span named by its route as declared (``GET /items/{item_id:id}``),
  from FastAPI's instrumentation, continuing the caller's W3C ``traceparent``;
- **each unit of work** under it, from its BEGIN to its end: ``db.unit.outcome``
  (``committed``, ``rolled back``, or ``closed``: a read-only unit has nothing to
  commit), ``db.unit.failure`` (``errors.py``'s class) when a statement failed, and an
  error status when its commit failed;
- **each statement** under its unit: its SQL text, never its parameters{% if cookiecutter.database == "postgresql" %}, and the
  server it went to{{ " (a standby's, on a standby)" if cookiecutter.read_replicas }}{% endif %};
- **a background task**: a span under its request's (the instrumentation's){{ ";" if cookiecutter.jobs else "." }}
{% if cookiecutter.jobs %}
- **a job**: a trace of its own for each try, linked to the span that recorded the job.
{% endif %}

Every log line carries the ``trace_id`` and ``span_id`` current where it was logged.

The statements' and units' spans come from a few SQLAlchemy listeners written here, not
from OpenTelemetry's SQLAlchemy instrumentation: that one declares ``sqlalchemy<2.1``
(its ``instrument()`` refuses ours), and it would make a statement the child of whatever
span is current, the request's, not of the unit of work the statement belongs to.
"""

import logging
import os
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from anyio import move_on_after, to_thread
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import ExceptionContext, ExecutionContext
from sqlalchemy.orm import Session, SessionTransaction

from .db.engine import failure_of
from .db.errors import Failure
from .db.unit import UnitSession

SERVICE = "{{ cookiecutter.project_slug }}"
ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
# Seconds a stopping service gives its last spans to reach the collector.
FLUSH_SECONDS = 5
# The keys of a unit's span in its session's and its connection's ``info``, and of how it ended.
_SPAN = "span"
_OUTCOME = "outcome"
# The table a statement names first: what its span is named by, with its operation.
_TABLE = re.compile(r'\b(?:FROM|INTO|UPDATE)\s+("?[\w.]+"?)', re.I)
_QUOTE = '"'

tracer = trace.get_tracer(__name__)


def provider_from_environment() -> TracerProvider | None:
    """The tracer provider the ``OTEL_*`` variables ask for; ``None``: none (see above)."""
    environ = os.environ
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if not any(environ.get(name) for name in ENDPOINTS):
        return None
    named = {} if environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: SERVICE}
    # The SDK reads the sampler (OTEL_TRACES_SAMPLER), the exporter's endpoint, headers
    # and timeout, and the batches' size and delay (OTEL_BSP_*).
    provider = TracerProvider(resource=Resource.create(named))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def configure() -> bool:
    """Set this process's tracer provider from the environment, once; whether it traces.
    The SDK sends the spans it still holds as the process exits normally."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = provider_from_environment()
        if provider is None:
            return False
        trace.set_tracer_provider(provider)
    _listen_once()
    return True


def install(app: FastAPI) -> None:
    """Trace ``app``'s requests, if this process traces (``configure()``); the spans it
    holds are sent as its lifespan ends (uvicorn ends the process by the signal that
    stopped it, which skips the SDK's own flush at exit)."""
    if not configure():
        return
    # Health probes make no traces, unless OTEL_PYTHON_FASTAPI_EXCLUDED_URLS says otherwise.
    excluded = os.environ.get("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS", "/health")
    FastAPIInstrumentor.instrument_app(
        app, excluded_urls=excluded, exclude_spans=["receive", "send"]
    )
    lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def flushed(app: FastAPI) -> AsyncIterator[Any]:
        try:
            async with lifespan(app) as state:
                yield state
        finally:
            provider = trace.get_tracer_provider()
            if isinstance(provider, TracerProvider):
                # Bounded: an unreachable collector would hold the shutdown for its timeouts.
                with move_on_after(FLUSH_SECONDS):
                    await to_thread.run_sync(provider.force_flush, abandon_on_cancel=True)

    app.router.lifespan_context = flushed


def traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, to be continued elsewhere."""
    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier.get("traceparent")


def follows(name: str, parent: str | None) -> None:
    """Name the current span ``name``, and link it to the span a ``traceparent()`` came from."""
    span = trace.get_current_span()
    span.update_name(name)
    if parent is not None:
        linked = trace.get_current_span(extract({"traceparent": parent})).get_span_context()
        if linked.is_valid:
            span.add_link(linked)


def failed(error: BaseException) -> None:
    """Mark the current span as failed by ``error``: by its class, not its message, which
    may quote a row's values (a database's DETAIL line)."""
    trace.get_current_span().set_status(Status(StatusCode.ERROR, type(error).__name__))


class TraceIdFilter(logging.Filter):
    """Gives each log record the ``trace_id`` and ``span_id`` current where it was
    logged ("-" outside any span)."""

    def filter(self, record: logging.LogRecord) -> bool:
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            record.trace_id = format(span.trace_id, "032x")
            record.span_id = format(span.span_id, "016x")
        else:
            record.trace_id = record.span_id = "-"
        return True


_listening = False


def _listen_once() -> None:
    global _listening
    if _listening:
        return
    _listening = True
    event.listen(UnitSession, "after_begin", _unit_began)
    event.listen(UnitSession, "after_commit", _outcome("committed"))
    event.listen(UnitSession, "after_rollback", _outcome("rolled back"))
    event.listen(UnitSession, "after_transaction_end", _unit_ended)
    event.listen(Engine, "before_cursor_execute", _statement_began)
    event.listen(Engine, "after_cursor_execute", _statement_ended)
    event.listen(Engine, "handle_error", _statement_failed)


def _unit_began(session: Session, transaction: SessionTransaction, connection: Connection) -> None:
    """A unit of work's span, under the work it is part of (a request, a background task,
    a job); units outside any (a periodic check) make no trace of their own."""
    if transaction.parent is not None or _SPAN in session.info or session.info.get("ending"):
        return  # a unit's statements after its commit (a subclass's after_commit()) are its own
    if not trace.get_current_span().get_span_context().is_valid:
        return
    name = session.info.get("name", "A unit of work")
    span = tracer.start_span(f"unit of work {name}", attributes={"db.unit.name": name})
    # The connection's info outlives the unit's connection: emptied as the unit ends.
    session.info[_SPAN] = (span, connection.info)
    connection.info[_SPAN] = span


def _outcome(outcome: str) -> Callable[[Session], None]:
    def set_outcome(session: Session) -> None:
        if _SPAN in session.info:
            session.info[_OUTCOME] = outcome

    return set_outcome


def _unit_ended(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None or _SPAN not in session.info:
        return
    span, connection_info = session.info.pop(_SPAN)
    if connection_info.get(_SPAN) is span:
        del connection_info[_SPAN]
    outcome = session.info.pop(_OUTCOME, "closed")
    span.set_attribute("db.unit.outcome", outcome)
    if session.info.get("ending") and outcome != "committed":  # its rollback may have failed too
        span.set_status(Status(StatusCode.ERROR, "The commit failed."))
{% if cookiecutter.read_replicas %}
    if (standby := session.info.get("standby")) is not None:
        span.set_attribute("db.standby", standby.name)
{% endif %}
    span.end()


def _statement_began(
    connection: Connection,
    _cursor: Any,
    statement: str,
    _parameters: Any,
    execution: ExecutionContext | None,
    _executemany: bool,
) -> None:
    unit: Span | None = connection.info.get(_SPAN)
    if unit is None or execution is None or not unit.is_recording():
        return
    operation = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
    url = connection.engine.url
    attributes: dict[str, str | int] = {
        "db.system.name": url.get_backend_name(),
        "db.operation.name": operation,
        "db.query.text": statement,
    }
    name = operation
    if (table := _TABLE.search(statement)) is not None:
        attributes["db.collection.name"] = table[1].strip(_QUOTE)
        name = f"{operation} {attributes['db.collection.name']}"
{% if cookiecutter.database == "postgresql" %}
    attributes["server.address"] = url.host or "localhost"
    attributes["server.port"] = url.port or 5432
{% endif %}
    parent = trace.set_span_in_context(unit)
    span = tracer.start_span(name, parent, SpanKind.CLIENT, attributes)
    execution.__dict__[_SPAN] = span


def _statement_ended(_connection: Connection, *args: Any) -> None:
    execution: ExecutionContext | None = args[3]
    if execution is not None and (span := execution.__dict__.pop(_SPAN, None)) is not None:
        span.end()


def _statement_failed(error: ExceptionContext) -> None:
    """Mark the failed statement's span, and its unit's, with ``errors.py``'s class."""
    wrapped = error.sqlalchemy_exception  # None: not a DBAPI error
    failure = (Failure.INTERNAL if wrapped is None else failure_of(wrapped)).value
    execution = error.execution_context
    if execution is not None and (span := execution.__dict__.pop(_SPAN, None)) is not None:
        span.set_attribute("db.failure", failure)
        span.set_status(Status(StatusCode.ERROR, type(error.original_exception).__name__))
        span.end()
    connection = error.connection
    if connection is not None and (unit := connection.info.get(_SPAN)) is not None:
        unit.set_attribute("db.unit.failure", failure)
