"""How failures become HTTP responses: the one place that translates them.

Every failure below ends as a JSON ``{"detail": ...}`` response:

- ``ConflictError``, raised by a repository for a write that conflicts with
  stored data: 409 with its message.
- Any SQLAlchemy error: 409 for a unique violation, 503 with ``Retry-After``
  when the database is unreachable or no connection was free in time, 500
  otherwise. A commit that fails at the end of a request gets the same answer
  (``session.py``).
"""

import logging

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from .db.engine import is_unique_violation
from .db.errors import ConflictError

logger = logging.getLogger(__name__)

# Errors that mean "the database cannot serve this request now".
UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeoutError)


def database_error_response(error: Exception) -> JSONResponse:
    """The response for a failed database operation."""
    if isinstance(error, IntegrityError) and is_unique_violation(error):
        return JSONResponse(
            {"detail": "The request conflicts with stored data."},
            status_code=status.HTTP_409_CONFLICT,
        )
    if isinstance(error, UNAVAILABLE):
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
    app.add_exception_handler(SQLAlchemyError, _database_error)
