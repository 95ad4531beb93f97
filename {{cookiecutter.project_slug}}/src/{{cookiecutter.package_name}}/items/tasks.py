"""Background tasks: work after the response, at most once. A crash, a deploy or an
exception loses one and nothing retries it, so what must not be lost is written in
the request's own transaction, as ``ItemEvent`` is.
"""

import logging

logger = logging.getLogger(__name__)


async def announce_change(item_id: int, action: str) -> None:
    """Tell whoever follows items that one changed; here, a log line (a webhook or a
    message would go here). Work that needs the database opens a session of its own:
    ``async with database.open_session() as session``."""
    logger.info("Item %d %s", item_id, action, extra={"item_id": item_id, "action": action})
