{% set is_async = cookiecutter.driver == "async" %}
"""The items' jobs: each change to an item is announced durably.

The repository writes an ``ItemEvent`` with each change (``updated``, ``deleted``);
``announce_changes()`` makes every flush that writes one record its job too, so the
change and its job commit together, or neither does. The background task of
``tasks.py`` still writes its log line after the response: at most once.
"""

import logging
from typing import Any

from sqlalchemy import event
{% if is_async %}
from sqlalchemy.ext.asyncio import AsyncSession
{% endif %}
from sqlalchemy.orm import Session, UOWTransaction

from ..jobs import handler
from .models import ItemEvent

logger = logging.getLogger(__name__)
# The events announced; "announced" itself is not.
ANNOUNCED = frozenset({"updated", "deleted"})


@handler("items.announce_change")
{{ cookiecutter.__async }}def announce_change(session: {{ "AsyncSession" if is_async else "Session" }}, payload: dict[str, Any]) -> None:
    """Tell whoever follows items that one changed (a webhook or a message would go here),
    and write in its history that they were told: once, as the job is marked handled."""
    item_id, action = payload["item_id"], payload["action"]
    session.add(ItemEvent(item_id=item_id, action="announced"))
    extra = {"item_id": item_id, "action": action}
    logger.info("Item %d %s: announced", item_id, action, extra=extra)


def _record_announcements(session: Session, _flush: UOWTransaction, _instances: Any) -> None:
    for instance in session.new:
        if isinstance(instance, ItemEvent) and instance.action in ANNOUNCED:
            announce_change.record(session, item_id=instance.item_id, action=instance.action)


def announce_changes() -> None:
    """From now on, a flush that writes an item's change records the job announcing it."""
    if not event.contains(Session, "before_flush", _record_announcements):
        event.listen(Session, "before_flush", _record_announcements)
