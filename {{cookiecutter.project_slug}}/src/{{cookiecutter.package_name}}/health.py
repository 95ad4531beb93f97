"""Liveness and readiness probes."""

from fastapi import APIRouter

from .session import DatabaseDep

router = APIRouter(prefix="/health", tags=["health"])


@router.get("")
async def live() -> dict[str, str]:
    """The process is up. Does not touch the database."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(database: DatabaseDep) -> dict[str, str]:
    """The database answers a query through the pool (else ``errors.py``'s 503)."""
    await database.ping()
    return {"status": "ok"}
