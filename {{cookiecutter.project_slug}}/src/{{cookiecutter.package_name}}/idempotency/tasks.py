"""Deleting expired keys while the service runs."""

import asyncio
import logging

from sqlalchemy.exc import SQLAlchemyError

from ..db.unit import Database
from .repository import PURGE_BATCH, purge_expired

logger = logging.getLogger(__name__)

# How often expired keys are looked for, at most (seconds).
PURGE_EVERY = 60 * 60


async def purge_expired_keys(database: Database, ttl: float) -> None:
    """Delete expired keys, a batch per unit of work, every hour (or ``ttl``, if
    shorter), until cancelled. A failure is logged and tried again the next time."""
    while True:
        await asyncio.sleep(min(ttl, PURGE_EVERY))
        deleted = PURGE_BATCH
        try:
            while deleted == PURGE_BATCH:
                async with database.open_session(name="purge_expired_keys()") as session:
                    deleted = await database.run(session, purge_expired)
        except SQLAlchemyError as error:
            logger.warning("Expired idempotency keys not purged: %s", type(error).__name__)
