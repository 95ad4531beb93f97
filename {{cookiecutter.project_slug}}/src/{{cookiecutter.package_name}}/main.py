"""The application: ``create_app()`` builds one.

uvicorn calls it in each worker (``uvicorn --factory {{ cookiecutter.package_name }}.main:create_app``, as
``python -m {{ cookiecutter.package_name }}`` does): nothing is built, and no setting read, on import.
"""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI
from starlette.middleware import Middleware

from . import health, observability
{% if cookiecutter.database == "postgresql" %}
from .consistency import ConsistencyMiddleware
{% endif %}
from .db.unit import Database
from .errors import BodyLimitMiddleware, UnexpectedErrorMiddleware, install_error_handlers
from .http import HostMiddleware, SecurityHeadersMiddleware
from .idempotency import middleware as idempotency
from .idempotency.tasks import purge_expired_keys
from .items.routes import router as items_router
from .observability import REQUEST_ID_HEADER, AccessMiddleware, is_request_id, worker_stopped
{% if cookiecutter.session_strategy == "middleware" %}
from .session import SessionMiddleware
{% endif %}
from .settings import Settings, get_settings

logger = logging.getLogger(__name__)


def middleware(settings: Settings) -> list[Middleware]:
    """The middleware every request passes through, outermost first. The order matters:

    - the request id is set first, so every line logged below carries it;
    - every answer gets the security headers, the last resort's 500 included;
    - a request for a host the service does not serve is refused before any work;
{% if cookiecutter.database == "postgresql" %}
    - with standbys, a request's consistency token is read before any unit of work
      begins, and a request that wrote gets one once all its units have ended;
{% endif %}
    - the access log sees the final status: the 500 of an unexpected error{% if cookiecutter.session_strategy == "middleware" %} and
      the answer to a commit that failed{% endif %};
    - the 500 of an unexpected error is the answer of last resort for all within;
    - an oversized body is refused before anything reads it;
    - a write with an ``Idempotency-Key`` begins its unit of work before the
      application runs, and commits it once its whole answer is stored{% if cookiecutter.session_strategy == "middleware" %};
    - the request's session ends when its response starts, inside everything
      that reports on that response{% endif %}.
    """
{% if cookiecutter.database == "postgresql" %}
    consistency = [
        Middleware(
            ConsistencyMiddleware,
            max_lag=settings.db_replica_max_lag,
            check_interval=settings.db_replica_check_interval,
        )
    ]
{% endif %}
    return [
        Middleware(CorrelationIdMiddleware, header_name=REQUEST_ID_HEADER, validator=is_request_id),
        Middleware(SecurityHeadersMiddleware),
        Middleware(AccessMiddleware),
        Middleware(HostMiddleware, allowed=settings.allowed_hosts),
{% if cookiecutter.database == "postgresql" %}
        *(consistency if settings.database_replica_urls else []),
{% endif %}
        Middleware(UnexpectedErrorMiddleware),
        Middleware(BodyLimitMiddleware, max_bytes=settings.max_request_body),
        Middleware(idempotency.IdempotencyMiddleware, ttl=settings.idempotency_key_ttl),
{% if cookiecutter.session_strategy == "middleware" %}
        Middleware(SessionMiddleware),
{% endif %}
    ]


def create_app(settings: Settings | None = None) -> FastAPI:
    """An application for ``settings`` (by default: from the environment)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One engine (and connection pool) per running application, disposed of
        # on shutdown: Ctrl-C or SIGTERM leaves no connection open.
        database = Database(settings)
        app.state.database = database
        log_connection_budget(settings)
        tasks = [asyncio.create_task(purge_expired_keys(database, settings.idempotency_key_ttl))]
{% if cookiecutter.database == "postgresql" %}
        if database.replicas:
            interval = settings.db_replica_check_interval
            tasks.append(asyncio.create_task(database.watch_standbys(interval)))
{% endif %}
        try:
            yield
        finally:
            # Ended before the pools close: a task mid-query gives its connection back first.
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await database.dispose()
            worker_stopped()

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
    app.state.metrics_token = settings.metrics_token
    install_error_handlers(app)
    idempotency.document(app)
    app.include_router(observability.router)
    app.include_router(health.router)
    app.include_router(items_router)
    return app


def log_connection_budget(settings: Settings) -> None:
    """How many database connections this worker, and all workers of this process, may open."""
    per_server = settings.db_pool_size + settings.db_max_overflow
{% if cookiecutter.database == "postgresql" %}
    servers = 1 + len(settings.database_replica_urls)
    standbys = f" to each of {servers} servers: the primary, its standbys" if servers > 1 else ""
    per_worker = per_server * servers
    logger.info(
        "Database connections: up to %d in this worker (DB_POOL_SIZE=%d + DB_MAX_OVERFLOW=%d%s),"
        " %d in all %d workers (WEB_CONCURRENCY)",
        per_worker,
        settings.db_pool_size,
        settings.db_max_overflow,
        standbys,
        per_worker * settings.web_concurrency,
        settings.web_concurrency,
    )
{% else %}
    logger.info(
        "Database connections: up to %d in this worker (DB_POOL_SIZE=%d + DB_MAX_OVERFLOW=%d),"
        " %d in all %d workers (WEB_CONCURRENCY)",
        per_server,
        settings.db_pool_size,
        settings.db_max_overflow,
        per_server * settings.web_concurrency,
        settings.web_concurrency,
    )
{% endif %}
