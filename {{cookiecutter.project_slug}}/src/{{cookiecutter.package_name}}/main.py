{% set keys = cookiecutter.idempotency_keys %}
{% set replicas = cookiecutter.read_replicas %}
{% set in_middleware = cookiecutter.session_strategy == "middleware" %}
{% set background = cookiecutter.metrics or keys or replicas %}
{% set joined = background or cookiecutter.jobs or cookiecutter.tracing %}
{% set database_class = "ServiceDatabase" if keys and replicas else ("KeyedDatabase" if keys else ("ReplicatedDatabase" if replicas else "Database")) %}
"""The application: ``create_app()`` builds one.

uvicorn calls it in each worker (``uvicorn --factory {{ cookiecutter.package_name }}.main:create_app``, as
``python -m {{ cookiecutter.package_name }}`` does): nothing is built, and no setting read, on import.
{% if joined %}

This is where the wings join the core: their middleware, routes, background
tasks and the ``Database`` that begins and ends units of work.
{% endif %}
"""

{% if background %}
import asyncio
{% endif %}
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware import Middleware

from . import {{ "consistency, " if replicas }}health{{ ", metrics" if cookiecutter.metrics }}{{ ", tracing" if cookiecutter.tracing }}
{% if replicas %}
from .db.replicas import ReplicatedDatabase
{% endif %}
{% if not keys and not replicas %}
from .db.unit import Database
{% endif %}
from .errors import BodyLimitMiddleware, UnexpectedErrorMiddleware, install_error_handlers
from .http import HostMiddleware, SecurityHeadersMiddleware, declare_answers
{% if keys %}
from .idempotency import IdempotencyMiddleware, KeyedDatabase, document, purge_expired_keys
{% endif %}
{% if cookiecutter.jobs %}
from .items.jobs import announce_changes
{% endif %}
from .items.routes import router as items_router
{% if not cookiecutter.metrics %}
from .observability import AccessMiddleware
{% endif %}
{% if in_middleware %}
from .session import SessionMiddleware
{% endif %}
from .settings import Settings, get_settings

logger = logging.getLogger(__name__)
{% if keys and replicas %}


class ServiceDatabase(KeyedDatabase, ReplicatedDatabase):
    """Keyed writes (``idempotency/``) on a primary with standbys (``db/replicas.py``)."""
{% endif %}


def middleware(settings: Settings) -> list[Middleware]:
    """The middleware every request passes through, outermost first. The order matters:

    - The request id first, so that every line logged below carries it; the access log
      sees the final status (the last resort's 500{{ ", a failed commit's answer" if in_middleware }}).
    - The security headers on every answer; a host not served refused before any work.
{% if replicas %}
    - With standbys, a request's consistency token is read before any unit of work
      begins, and a request that wrote gets one once all its units have ended.
{% endif %}
    - The last resort's 500 for all within; an oversized body refused before it is read.
{% if keys %}
    - A write with an ``Idempotency-Key`` begins its unit of work before the
      application runs, and commits it once its whole answer is stored.
{% endif %}
{% if in_middleware %}
    - The request's session ends when its response starts, inside everything
      that reports on that response.
{% endif %}
    """
{% if replicas %}
    tokens = Middleware(
        consistency.ConsistencyMiddleware,
        max_lag=settings.db_replica_max_lag,
        check_interval=settings.db_replica_check_interval,
    )
{% endif %}
    return [
        Middleware({{ "metrics.MetricsMiddleware" if cookiecutter.metrics else "AccessMiddleware" }}),
        Middleware(SecurityHeadersMiddleware),
        Middleware(HostMiddleware, allowed=settings.allowed_hosts),
{% if replicas %}
        *([tokens] if settings.database_replica_urls else []),
{% endif %}
        Middleware(UnexpectedErrorMiddleware),
        Middleware(BodyLimitMiddleware, max_bytes=settings.max_request_body),
{% if keys %}
        Middleware(IdempotencyMiddleware, ttl=settings.idempotency_key_ttl),
{% endif %}
{% if in_middleware %}
        Middleware(SessionMiddleware),
{% endif %}
    ]


def create_app(settings: Settings | None = None) -> FastAPI:
    """An application for ``settings`` (by default: from the environment)."""
    settings = settings or get_settings()
{% if cookiecutter.jobs %}
    announce_changes()  # each item's change records its job (items/jobs.py)
{% endif %}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One engine (and pool) per running application, disposed of on shutdown.
        database = {{ database_class }}(settings)
        app.state.database = database
        log_connection_budget(settings)
{% if background %}
        tasks = [
{% if cookiecutter.metrics %}
            asyncio.create_task(metrics.keep_sampling(database)),
{% endif %}
{% if keys %}
            asyncio.create_task(purge_expired_keys(database, settings.idempotency_key_ttl)),
{% endif %}
{% if replicas %}
            asyncio.create_task(database.watch(settings.db_replica_check_interval)),
{% endif %}
        ]
        try:
            yield
        finally:
            # Ended before the pools close: a task mid-query gives its connection back first.
            # Cancelled again until it ends: a sync standby check once outlived its
            # cancellation, and the shutdown waited for it for good.
            while pending := [task for task in tasks if not task.done()]:
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending, timeout=1)
            await asyncio.gather(*tasks, return_exceptions=True)
            await database.dispose()
{% if cookiecutter.metrics and cookiecutter.workers %}
            metrics.worker_stopped()
{% endif %}
{% else %}
        try:
            yield
        finally:
            await database.dispose()
{% endif %}

    docs = settings.api_docs
    app = FastAPI(
        title="{{ cookiecutter.project_name }}",
        description="{{ cookiecutter.description }}",
        lifespan=lifespan,
        middleware=middleware(settings),
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    install_error_handlers(app)
    declare_answers(app)
{% if keys %}
    document(app)
{% endif %}
{% if replicas %}
    consistency.document(app)
{% endif %}
    app.include_router(items_router)
    app.include_router(health.router)
{% if cookiecutter.metrics %}
    app.include_router(metrics.router(settings.metrics_token))
{% endif %}
{% if cookiecutter.tracing %}
    tracing.install(app)  # when OTEL_EXPORTER_OTLP_ENDPOINT is set (tracing.py)
{% endif %}
    return app


def log_connection_budget(settings: Settings) -> None:
    """How many database connections this {{ "worker, and the whole server," if cookiecutter.workers else "process" }} may open."""
    connections = settings.db_pool_size + settings.db_max_overflow
    pool = f"DB_POOL_SIZE={settings.db_pool_size} + DB_MAX_OVERFLOW={settings.db_max_overflow}"
{% if replicas %}
    servers = 1 + len(settings.database_replica_urls)
    if servers > 1:
        connections *= servers
        pool += f" to each of {servers} servers: the primary, its standbys"
{% endif %}
{% if cookiecutter.workers %}
    logger.info(
        "Database connections: up to %d in this worker (%s), %d in all %d workers"
        " (WEB_CONCURRENCY)",
        connections,
        pool,
        connections * settings.web_concurrency,
        settings.web_concurrency,
    )
{% else %}
    logger.info("Database connections: up to %d (%s)", connections, pool)
{% endif %}
