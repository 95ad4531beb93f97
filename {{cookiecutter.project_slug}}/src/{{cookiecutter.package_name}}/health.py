{% set is_async = cookiecutter.driver == "async" %}
"""Liveness and readiness probes."""

from fastapi import APIRouter, HTTPException, Request, status
from sqlalchemy import text

from .db.engine import UNAVAILABLE_ERRORS

router = APIRouter(prefix="/health", tags=["health"])


@router.get("")
{{ cookiecutter.__async }}def live() -> dict[str, str]:
    """The process is up. Does not touch the database."""
    return {"status": "ok"}


@router.get("/ready", responses={503: {"description": "The database does not answer"}})
{{ cookiecutter.__async }}def ready(request: Request) -> dict[str, str]:
    """The database answers a query."""
    try:
        {{ "async " if is_async }}with request.app.state.engine.connect() as connection:
            {{ cookiecutter.__await }}connection.execute(text("SELECT 1"))
    except UNAVAILABLE_ERRORS as error:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "The database does not answer."
        ) from error
    return {"status": "ok"}
