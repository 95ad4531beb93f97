"""How failures become HTTP responses.

Every database failure ends as a JSON ``{"detail": ...}`` response, never a
bare traceback: 409 for a unique violation, 503 when the database is
unreachable or the pool is exhausted, 500 for anything else.
{% if cookiecutter.session_strategy == "dependency" %}
A commit that fails in the session dependency reaches these handlers too.
{% else %}
The session middleware sends the same responses when a commit fails.
{% endif %}
"""

import logging

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from .db.engine import UNAVAILABLE_ERRORS, is_unique_violation

logger = logging.getLogger(__name__)


class ConflictError(Exception):
    """A write that conflicts with stored data, such as a name already taken."""


def database_error_response(error: Exception) -> JSONResponse:
    """The response for a failed database operation."""
    if isinstance(error, IntegrityError) and is_unique_violation(error):
        return JSONResponse(
            {"detail": "The request conflicts with stored data."},
            status_code=status.HTTP_409_CONFLICT,
        )
    if isinstance(error, (PoolTimeoutError, *UNAVAILABLE_ERRORS)):
        logger.warning("Database unavailable: %s", error)
        return JSONResponse(
            {"detail": "The database is unavailable, try again later."},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": "5"},
        )
    logger.error("Database error", exc_info=error)
    return JSONResponse(
        {"detail": "Internal database error."},
        status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


async def _database_error(_request: Request, error: Exception) -> JSONResponse:
    return database_error_response(error)


async def _conflict(_request: Request, error: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(error)}, status_code=status.HTTP_409_CONFLICT)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ConflictError, _conflict)
    database_errors: set[type[Exception]] = {SQLAlchemyError, PoolTimeoutError, *UNAVAILABLE_ERRORS}
    for error in database_errors:
        app.add_exception_handler(error, _database_error)
