{% set is_async = cookiecutter.driver == "async" %}
"""Storage of items, the only module that writes SQL for them: reads are ``select(Item)``
built once with bound parameters, loading what the answer nests; creates one ``INSERT
... RETURNING``; changes load the item locked, flush at once (the version check) and
record an ``ItemEvent`` with it.
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError
{% if is_async %}
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload
{% else %}
from sqlalchemy.orm import Session, selectinload
{% endif %}

from ..db.engine import is_unique_violation
from ..db.errors import ConflictError
from ..db.inserts import insert_returning
from .models import Item, ItemEvent
from .schemas import ItemCreate, ItemUpdate

_BY_ID = select(Item).where(Item.id == bindparam("item_id"))
_WITH_EVENTS = _BY_ID.options(selectinload(Item.events))
_PAGE = select(Item).where(Item.id > bindparam("after")).order_by(Item.id).limit(bindparam("limit"))
_COUNT = select(func.count()).select_from(select(Item.id).limit(bindparam("up_to")).subquery())


class ItemRepository:
    """Items, through the request's session; writes reach the database at once, so that a
    conflict surfaces here (``ConflictError``). The unit of work commits, not this."""

    def __init__(self, session: {{ "AsyncSession" if is_async else "Session" }}) -> None:
        self.session = session

    {{ cookiecutter.__async }}def get(self, item_id: int) -> Item | None:
        return ({{ cookiecutter.__await }}self.session.scalars(_BY_ID, {"item_id": item_id})).one_or_none()

    {{ cookiecutter.__async }}def get_with_events(self, item_id: int) -> Item | None:
        """The item and its events: two statements, however many events there are."""
        return ({{ cookiecutter.__await }}self.session.scalars(_WITH_EVENTS, {"item_id": item_id})).one_or_none()

    {{ cookiecutter.__async }}def get_to_change(self, item_id: int) -> Item | None:
        """The item, locked until the transaction ends: a concurrent change waits its turn."""
        return {{ cookiecutter.__await }}self.session.get(Item, item_id, with_for_update=True)

    {{ cookiecutter.__async }}def page(self, *, after: int, limit: int) -> Sequence[Item]:
        """Up to ``limit`` items with ids past ``after``, in id order (see paging.py)."""
        items = {{ cookiecutter.__await }}self.session.scalars(_PAGE, {"after": after, "limit": limit})
        return items.all()

    {{ cookiecutter.__async }}def count(self, *, up_to: int) -> int:
        """How many items there are, counting no further than ``up_to``."""
        return ({{ cookiecutter.__await }}self.session.scalar(_COUNT, {"up_to": up_to})) or 0

    {{ cookiecutter.__async }}def add(self, data: ItemCreate) -> Item:
        conflict = f"An item named {data.name!r} already exists."
        (item,) = {{ cookiecutter.__await }}self._insert([data.model_dump()], conflict)
        return item

    {{ cookiecutter.__async }}def add_all(self, data: Sequence[ItemCreate]) -> Sequence[Item]:
        conflict = "Two items would share a name, or a name already exists."
        return {{ cookiecutter.__await }}self._insert([entry.model_dump() for entry in data], conflict)

    {{ cookiecutter.__async }}def update(self, item: Item, changes: ItemUpdate) -> Item:
        for field, value in changes.model_dump(exclude_unset=True).items():
            setattr(item, field, value)
        if self.session.is_modified(item):
            self.session.add(ItemEvent(item_id=item.id, action="updated"))
            with _conflict_on_unique(f"An item named {changes.name!r} already exists."):
                {{ cookiecutter.__await }}self.session.flush()
        return item

    {{ cookiecutter.__async }}def delete(self, item: Item) -> None:
        self.session.add(ItemEvent(item_id=item.id, action="deleted"))
        {{ cookiecutter.__await }}self.session.delete(item)
        {{ cookiecutter.__await }}self.session.flush()

    {{ cookiecutter.__async }}def _insert(self, rows: list[dict[str, Any]], conflict: str) -> Sequence[Item]:
        with _conflict_on_unique(conflict):
            return {{ cookiecutter.__await }}insert_returning(self.session, Item, rows)


@contextmanager
def _conflict_on_unique(message: str) -> Iterator[None]:
    """A unique violation in the block, raised as a ``ConflictError(message)``."""
    try:
        yield
    except IntegrityError as error:
        if is_unique_violation(error):
            raise ConflictError(message) from error
        raise
