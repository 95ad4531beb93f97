{% set is_async = cookiecutter.driver == "async" %}
"""The application: ``create_app()`` builds one, ``app`` is the one uvicorn serves."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
{% if is_async %}
from sqlalchemy.ext.asyncio import async_sessionmaker
{% else %}
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import sessionmaker
{% endif %}

from . import health
from .db.engine import build_engine
{% if cookiecutter.session_strategy == "middleware" %}
from .db.session import SessionMiddleware
{% endif %}
{% if not is_async %}
from .db.threads import SessionThreads
{% endif %}
from .errors import install_error_handlers
from .items.routes import router as items_router
from .settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """An application for ``settings`` (by default: from the environment)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One engine (and connection pool) per running application, disposed of
        # on shutdown: Ctrl-C or SIGTERM leaves no connection open.
        engine = build_engine(settings)
        app.state.engine = engine
{% if is_async %}
        app.state.sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
        try:
            yield
        finally:
            await engine.dispose()
{% else %}
        app.state.sessionmaker = sessionmaker(engine, expire_on_commit=False)
        threads = SessionThreads(settings.db_pool_size + settings.db_max_overflow)
        app.state.session_threads = threads
        try:
            yield
        finally:
            await run_in_threadpool(engine.dispose)
            threads.shutdown()
{% endif %}

    app = FastAPI(
        title="{{ cookiecutter.project_name }}",
        description="{{ cookiecutter.description }}",
        lifespan=lifespan,
    )
{% if cookiecutter.session_strategy == "middleware" %}
    app.add_middleware(SessionMiddleware)
{% endif %}
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(items_router)
    return app


app = create_app()
