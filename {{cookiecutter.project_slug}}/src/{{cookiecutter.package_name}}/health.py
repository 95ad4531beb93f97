"""Liveness and readiness probes."""

from fastapi import APIRouter, HTTPException, status
from sqlalchemy.exc import SQLAlchemyError

from .session import DatabaseDep

router = APIRouter(prefix="/health", tags=["health"])


@router.get("")
async def live() -> dict[str, str]:
    """The process is up. Does not touch the database."""
    return {"status": "ok"}


@router.get("/ready", responses={503: {"description": "The database does not answer"}})
async def ready(database: DatabaseDep) -> dict[str, str]:
    """The database answers a query, through a connection of the pool."""
    try:
        await database.ping()
    except SQLAlchemyError as error:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "The database does not answer."
        ) from error
    return {"status": "ok"}
