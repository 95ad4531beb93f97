"""The application: ``create_app()`` builds one, ``app`` is the one uvicorn serves."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from . import health
from .db.transaction import Database
from .errors import install_error_handling
from .items.routes import router as items_router
{% if cookiecutter.session_strategy == "middleware" %}
from .session import SessionMiddleware
{% endif %}
from .settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """An application for ``settings`` (by default: from the environment)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One engine (and connection pool) per running application, disposed of
        # on shutdown: Ctrl-C or SIGTERM leaves no connection open.
        database = Database(settings)
        app.state.database = database
        try:
            yield
        finally:
            await database.dispose()

    app = FastAPI(
        title="{{ cookiecutter.project_name }}",
        description="{{ cookiecutter.description }}",
        lifespan=lifespan,
    )
{% if cookiecutter.session_strategy == "middleware" %}
    app.add_middleware(SessionMiddleware)
{% endif %}
    install_error_handling(app, max_request_body=settings.max_request_body)
    app.include_router(health.router)
    app.include_router(items_router)
    return app


app = create_app()
