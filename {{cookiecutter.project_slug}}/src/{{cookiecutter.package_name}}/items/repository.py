{% set is_async = cookiecutter.driver == "async" %}
"""Storage of items: the only module that writes SQL for them.

Reads and single creates, the hot paths, are plain statements through the
request's session: a SELECT of the columns, an INSERT ... RETURNING. They
answer ``StoredItem`` tuples, and skip the ORM's identity map, object
loading and unit-of-work flush. Each is built once, with bound parameters
for its values, so a request neither builds it again nor computes its cache
key. Changes and deletes load the ``Item`` itself, for its version check
(``models.py``).
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import NamedTuple, cast

from sqlalchemy import Table, bindparam, func, insert, select
from sqlalchemy.exc import IntegrityError
{% if is_async %}
from sqlalchemy.ext.asyncio import AsyncSession
{% else %}
from sqlalchemy.orm import Session
{% endif %}

from ..db.engine import is_unique_violation
from ..db.errors import ConflictError
from .models import Item
from .schemas import ItemCreate, ItemUpdate

# An item's first version; the ORM counts on from here with every change.
FIRST_VERSION = 1


class StoredItem(NamedTuple):
    """An item as stored, read by a plain statement."""

    id: int
    name: str
    description: str | None
    version: int


# The table itself, not the mapped class: statements on it take Core's path,
# with none of the ORM's compilation and result processing.
_ITEMS = cast(Table, Item.__table__)
_COLUMNS = (_ITEMS.c.id, _ITEMS.c.name, _ITEMS.c.description, _ITEMS.c.version)
_BY_ID = select(*_COLUMNS).where(_ITEMS.c.id == bindparam("id"))
_COUNT = select(func.count()).select_from(_ITEMS)
_PAGE = (
    select(*_COLUMNS).order_by(_ITEMS.c.id).offset(bindparam("offset")).limit(bindparam("limit"))
)
_INSERT = insert(_ITEMS).returning(*_COLUMNS)


class ItemRepository:
    """Items, read and written through the request's session.

    Writes are flushed at once, so a constraint violation surfaces here, as a
    ``ConflictError``, while the endpoint still runs. Committing is not a
    repository's job: the request's unit of work commits once (``session.py``).
    """

    def __init__(self, session: {{ "AsyncSession" if is_async else "Session" }}) -> None:
        self.session = session

    {{ cookiecutter.__async }}def get(self, item_id: int) -> StoredItem | None:
        result = {{ cookiecutter.__await }}self.session.execute(_BY_ID, {"id": item_id})
        row = result.one_or_none()
        return None if row is None else StoredItem(*row)

    {{ cookiecutter.__async }}def get_to_change(self, item_id: int) -> Item | None:
        """The item, locked until the transaction ends: a concurrent change waits its turn."""
        return {{ cookiecutter.__await }}self.session.get(Item, item_id, with_for_update=True)

    {{ cookiecutter.__async }}def page(self, *, offset: int, limit: int) -> tuple[list[StoredItem], int]:
        total = {{ cookiecutter.__await }}self.session.scalar(_COUNT)
        rows = {{ cookiecutter.__await }}self.session.execute(_PAGE, {"offset": offset, "limit": limit})
        return [StoredItem(*row) for row in rows], total or 0

    {{ cookiecutter.__async }}def add(self, data: ItemCreate) -> StoredItem:
        values = {**data.model_dump(), "version": FIRST_VERSION}
        with _conflict_on_unique(f"An item named {data.name!r} already exists."):
            result = {{ cookiecutter.__await }}self.session.execute(_INSERT, values)
        return StoredItem(*result.one())

    {{ cookiecutter.__async }}def add_all(self, data: Sequence[ItemCreate]) -> list[Item]:
        items = [Item(**entry.model_dump()) for entry in data]
        self.session.add_all(items)
        {{ cookiecutter.__await }}self._flush("Two items would share a name, or a name already exists.")
        return items

    {{ cookiecutter.__async }}def update(self, item: Item, changes: ItemUpdate) -> Item:
        for field, value in changes.model_dump(exclude_unset=True).items():
            setattr(item, field, value)
        {{ cookiecutter.__await }}self._flush(f"An item named {changes.name!r} already exists.")
        return item

    {{ cookiecutter.__async }}def delete(self, item: Item) -> None:
        {{ cookiecutter.__await }}self.session.delete(item)
        {{ cookiecutter.__await }}self.session.flush()

    {{ cookiecutter.__async }}def _flush(self, conflict: str) -> None:
        with _conflict_on_unique(conflict):
            {{ cookiecutter.__await }}self.session.flush()


@contextmanager
def _conflict_on_unique(message: str) -> Iterator[None]:
    """A unique violation in the block, raised as a ``ConflictError(message)``."""
    try:
        yield
    except IntegrityError as error:
        if is_unique_violation(error):
            raise ConflictError(message) from error
        raise
