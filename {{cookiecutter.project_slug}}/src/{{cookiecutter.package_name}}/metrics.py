{% set workers = cookiecutter.workers %}
"""``GET /metrics``, in Prometheus' text format (prometheus-client).

- **Requests**: ``http_requests_total`` and the ``http_request_duration_seconds``
  histogram, by method, route and status, counted where the access log is
  written (``MetricsMiddleware`` is the access log's middleware, reporting
  both), with the same bounded labels.
- **The connection pool**: ``db_pool_size``, ``db_pool_checked_out``,
  ``db_pool_overflow`` and ``db_pool_waiting`` (units of work in line for a
  connection), sampled from the running ``Database`` every second and at each
  scrape{% if cookiecutter.read_replicas %}; with standbys, each one's ``db_standby_in_rotation``,
  ``db_standby_lag_seconds`` and pool gauges, labelled by the standby{% endif %}.
{% if workers %}
- **Several workers**: each writes its numbers to files in
  ``PROMETHEUS_MULTIPROC_DIR``, which ``python -m {{ cookiecutter.package_name }}`` prepares
  (``metrics_folder.py``), and a scrape, whichever worker answers it, reports
  their sum.
{% endif %}

It tells who calls what, how often: with ``METRICS_TOKEN`` set it answers only
``Authorization: Bearer <token>`` (else 401), as Prometheus sends it
(``authorization: {credentials: <token>}`` in the scrape config).
"""

import asyncio
import hmac
{% if workers %}
import os
{% endif %}

from fastapi import APIRouter, HTTPException, Request, Response, status
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
{% if workers %}
    CollectorRegistry,
{% endif %}
    Counter,
    Gauge,
    Histogram,
    generate_latest,
{% if workers %}
    multiprocess,
{% endif %}
)
from pydantic import SecretStr
from sqlalchemy.pool import QueuePool
from starlette.types import Scope

{% if cookiecutter.read_replicas %}
from .db.replicas import ReplicatedDatabase
{% endif %}
from .db.unit import Database
{% if workers %}
from .metrics_folder import FOLDER
{% endif %}
from .observability import AccessMiddleware

# How often the pool's gauges are sampled, in seconds.
SAMPLE_EVERY = 1.0

_LABELS = ("method", "route", "status")
REQUESTS = Counter("http_requests", "HTTP requests answered", _LABELS)
LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time from a request's arrival to the last byte of its response",
    _LABELS,
)
# A route whose requests send more statements as its data grows is an N+1.
STATEMENTS_SENT = Histogram(
    "http_request_db_statements",
    "Database statements a request sent before its response's last byte",
    ("method", "route"),
    buckets=(0, 1, 2, 3, 5, 10, 20, 50, 100),
)
{% if workers %}
# In a multi-process server each worker writes its own values; a scrape sums
# those of the workers still running.
{% endif %}
POOL_SIZE = Gauge(
    "db_pool_size",
    "Connections the pool keeps open (DB_POOL_SIZE)",
{% if workers %}
    multiprocess_mode="livesum",
{% endif %}
)
POOL_CHECKED_OUT = Gauge(
    "db_pool_checked_out",
    "Connections lent to a unit of work",
{% if workers %}
    multiprocess_mode="livesum",
{% endif %}
)
POOL_OVERFLOW = Gauge(
    "db_pool_overflow",
    "Connections open beyond DB_POOL_SIZE (at most DB_MAX_OVERFLOW)",
{% if workers %}
    multiprocess_mode="livesum",
{% endif %}
)
POOL_WAITING = Gauge(
    "db_pool_waiting",
    "Units of work waiting for a free connection (for at most DB_POOL_TIMEOUT)",
{% if workers %}
    multiprocess_mode="livesum",
{% endif %}
)
{% if cookiecutter.read_replicas %}
STANDBY_IN_ROTATION = Gauge(
    "db_standby_in_rotation",
    "1 while a standby serves reads, 0 while it is down, lagging or promoted",
    ["standby"],
{% if workers %}
    multiprocess_mode="liveall",
{% endif %}
)
STANDBY_LAG = Gauge(
    "db_standby_lag_seconds",
    "How far behind the primary each standby replays, as its last check found",
    ["standby"],
{% if workers %}
    multiprocess_mode="liveall",
{% endif %}
)
STANDBY_POOL_SIZE = Gauge(
    "db_standby_pool_size",
    "Connections each standby's pool keeps open (DB_POOL_SIZE)",
    ["standby"],
{% if workers %}
    multiprocess_mode="livesum",
{% endif %}
)
STANDBY_POOL_CHECKED_OUT = Gauge(
    "db_standby_pool_checked_out",
    "Connections to each standby lent to a unit of work",
    ["standby"],
{% if workers %}
    multiprocess_mode="livesum",
{% endif %}
)
{% endif %}


def router(token: SecretStr | None) -> APIRouter:
    """``GET /metrics``; with ``token``, only for its bearer."""
    metrics = APIRouter()

    @metrics.get("/metrics", include_in_schema=False)
    async def scrape(request: Request) -> Response:
        """Every metric of the service, in Prometheus' text format."""
        if token is not None:
            sent = request.headers.get("authorization", "").encode()
            expected = f"Bearer {token.get_secret_value()}".encode()
            if not hmac.compare_digest(sent, expected):
                raise HTTPException(
                    status.HTTP_401_UNAUTHORIZED,
                    "GET /metrics needs the METRICS_TOKEN.",
                    headers={"WWW-Authenticate": "Bearer"},
                )
        sample(request.app.state.database)
{% if workers %}
        registry = REGISTRY
        if FOLDER in os.environ:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
{% else %}
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
{% endif %}

    return metrics


class MetricsMiddleware(AccessMiddleware):
    """The access log's middleware, counting each request in the metrics too."""

    def report(
        self, scope: Scope, method: str, route: str, status: int, seconds: float, statements: int
    ) -> None:
        super().report(scope, method, route, status, seconds, statements)
        REQUESTS.labels(method, route, status).inc()
        LATENCY.labels(method, route, status).observe(seconds)
        STATEMENTS_SENT.labels(method, route).observe(statements)


def sample(database: Database) -> None:
    """Set the pool's gauges from ``database``, as it is now."""
    pool = database.engine.pool
    if isinstance(pool, QueuePool):
        POOL_SIZE.set(pool.size())
        POOL_CHECKED_OUT.set(pool.checkedout())
        POOL_OVERFLOW.set(max(0, pool.overflow()))
    POOL_WAITING.set(database.waiting)
{% if cookiecutter.read_replicas %}
    for standby in database.standbys if isinstance(database, ReplicatedDatabase) else []:
        STANDBY_IN_ROTATION.labels(standby.name).set(int(standby.in_rotation))
        STANDBY_LAG.labels(standby.name).set(standby.lag)
        pool = standby.engine.pool
        if isinstance(pool, QueuePool):
            STANDBY_POOL_SIZE.labels(standby.name).set(pool.size())
            STANDBY_POOL_CHECKED_OUT.labels(standby.name).set(pool.checkedout())
{% endif %}


async def keep_sampling(database: Database) -> None:
    """``sample()`` every ``SAMPLE_EVERY`` seconds, until cancelled."""
    while True:
        sample(database)
        await asyncio.sleep(SAMPLE_EVERY)
{% if workers %}


def worker_stopped() -> None:
    """Drop this worker process's share of the gauges: it holds no connection now."""
    if FOLDER in os.environ:
        multiprocess.mark_process_dead(os.getpid())
{% endif %}
