"""What the service tells its operators: request ids, an access log and metrics.

- **Request id** (asgi-correlation-id): the request's ``X-Request-ID`` when it
  looks like one (``is_request_id()``: what load balancers and proxies send,
  and nothing that could forge a log line), else a new one; returned in the
  response's ``X-Request-ID`` and carried by every log line written while the
  request is handled (``logs.py``), so a request keeps its id across services.
- **Access log**: one line per request on the ``{{ cookiecutter.package_name }}.access`` logger,
  with its method, route (the path template, such as ``/items/{item_id}``),
  status and duration in milliseconds (and, in JSON, the path).
- **``GET /metrics``**, in Prometheus' format (prometheus-client): requests
  and their latency by method, route and status, and the connection pool's
  gauges (``db/metrics.py``). With several worker processes each writes its
  numbers to files in ``PROMETHEUS_MULTIPROC_DIR`` (``python -m {{ cookiecutter.package_name }}``
  prepares it) and a scrape, whichever worker answers it, reports their sum.
  It tells who calls what, how often: with ``METRICS_TOKEN`` set it answers
  only ``Authorization: Bearer <token>`` (else 401), as Prometheus sends it
  (``authorization: {credentials: <token>}`` in the scrape config).

Labels never grow with what clients send: a path no route matches counts as
``<unmatched>``, a method the service does not know as ``OTHER``.
"""

import hmac
import logging
import os
import re
import time

from fastapi import APIRouter, HTTPException, Request, Response, status
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.types import Message, Receive, Scope, Send

from .http import HTTP_METHODS, ASGIMiddleware, route_of

REQUEST_ID_HEADER = "X-Request-ID"
# A UUID, nginx's 32 hex digits, AWS's Root=1-...;Parent=...;Sampled=1, Google's
# TRACE/SPAN;o=1, a W3C traceparent: letters, digits and these marks, no space.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:;=/+@-]{1,200}")
# The status of a request whose client went away before it was answered (nginx's).
NO_RESPONSE = 499

access_log = logging.getLogger("{{ cookiecutter.package_name }}.access")

_LABELS = ("method", "route", "status")
REQUESTS = Counter("http_requests", "HTTP requests answered", _LABELS)
LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time from a request's arrival to the last byte of its response",
    _LABELS,
)

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Every metric of the service, in Prometheus' text format."""
    token = request.app.state.metrics_token
    if token is not None:
        sent = request.headers.get("authorization", "").encode()
        expected = f"Bearer {token.get_secret_value()}".encode()
        if not hmac.compare_digest(sent, expected):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "GET /metrics needs the METRICS_TOKEN.",
                headers={"WWW-Authenticate": "Bearer"},
            )
    registry = REGISTRY
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def is_request_id(value: str) -> bool:
    """Whether an upstream ``X-Request-ID`` is kept (see above)."""
    return _REQUEST_ID.fullmatch(value) is not None


class AccessMiddleware(ASGIMiddleware):
    """Times each request: one access log line and its metrics."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = NO_RESPONSE
        answered: float | None = None

        async def timing_send(message: Message) -> None:
            nonlocal status, answered
            await send(message)
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                answered = time.perf_counter()

        try:
            await self.app(scope, receive, timing_send)
        finally:
            # Background tasks run after the last byte; they do not count.
            seconds = (answered or time.perf_counter()) - started
            method = scope["method"] if scope["method"] in HTTP_METHODS else "OTHER"
            route = route_of(scope)
            REQUESTS.labels(method, route, status).inc()
            LATENCY.labels(method, route, status).observe(seconds)
            access_log.info(
                "%s %s %s %.1f ms",
                method,
                route,
                status,
                seconds * 1000,
                extra={
                    "method": method,
                    "route": route,
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                },
            )


def worker_stopped() -> None:
    """Drop this worker process's share of the gauges: it holds no connection now."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        multiprocess.mark_process_dead(os.getpid())
