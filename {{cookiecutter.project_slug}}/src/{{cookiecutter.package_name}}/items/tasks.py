"""Work that runs after the response: background tasks, with sessions of their own."""

from ..db.transaction import Database
from .models import ItemEvent


async def record_event(database: Database, item_id: int, action: str) -> None:
    """Log a change to an item, once the client has its answer.

    The request's session has ended by now, so the task opens its own: what it
    writes is committed when the block succeeds, rolled back if it raises.
    """
    async with database.open_session() as session:
        session.add(ItemEvent(item_id=item_id, action=action))
