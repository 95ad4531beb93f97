"""Every test traces, into memory (tracing.py sees the SDK's provider set here, before
any app is made): the wing runs under the whole suite, and ``spans`` shows a test
what its work ended."""

from collections.abc import Callable

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

EXPORTER = InMemorySpanExporter()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
trace.set_tracer_provider(_provider)


@pytest.fixture(autouse=True)
def spans() -> Callable[[], list[ReadableSpan]]:
    """The spans ended since the test began."""
    EXPORTER.clear()
    return lambda: list(EXPORTER.get_finished_spans())
