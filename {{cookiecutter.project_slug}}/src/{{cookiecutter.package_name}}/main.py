"""The application: ``create_app()`` builds one.

uvicorn calls it in each worker (``uvicorn --factory {{ cookiecutter.package_name }}.main:create_app``, as
``python -m {{ cookiecutter.package_name }}`` does): nothing is built, and no setting read, on import.
"""

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from . import health
from .db.transaction import Database
from .errors import install_error_handling
from .items.routes import router as items_router
from .observability import install_observability, worker_stopped
{% if cookiecutter.session_strategy == "middleware" %}
from .session import SessionMiddleware
{% endif %}
from .settings import Settings, get_settings

logger = logging.getLogger(__name__)


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
        # What exists once the app is up (modules, routes, the engine) lives as long
        # as the process: out of the collector's way, it no longer makes each full
        # collection a pause of tens of milliseconds for every request in flight.
        gc.freeze()
        try:
            yield
        finally:
            await database.dispose()
            worker_stopped()

    app = FastAPI(
        title="{{ cookiecutter.project_name }}",
        description="{{ cookiecutter.description }}",
        lifespan=lifespan,
    )
{% if cookiecutter.session_strategy == "middleware" %}
    app.add_middleware(SessionMiddleware)
{% endif %}
    install_error_handling(app, max_request_body=settings.max_request_body)
    install_observability(app)
    app.include_router(health.router)
    app.include_router(items_router)
    return app


def log_connection_budget(settings: Settings) -> None:
    """How many database connections this worker, and all workers of this process, may open."""
    per_worker = settings.db_pool_size + settings.db_max_overflow
    logger.info(
        "Database connections: up to %d in this worker (DB_POOL_SIZE=%d + DB_MAX_OVERFLOW=%d),"
        " %d in all %d workers (WEB_CONCURRENCY)",
        per_worker,
        settings.db_pool_size,
        settings.db_max_overflow,
        per_worker * settings.web_concurrency,
        settings.web_concurrency,
    )
