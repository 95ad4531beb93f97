{% set is_async = cookiecutter.driver == "async" %}
"""Storage of items: the only module that writes SQL for them."""

from collections.abc import Sequence

from sqlalchemy import func, select
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


class ItemRepository:
    """Items, read and written through the request's session.

    Writes are flushed at once, so a constraint violation surfaces here, as a
    ``ConflictError``, while the endpoint still runs. Committing is not a
    repository's job: the request's unit of work commits once (``session.py``).
    """

    def __init__(self, session: {{ "AsyncSession" if is_async else "Session" }}) -> None:
        self.session = session

    {{ cookiecutter.__async }}def get(self, item_id: int) -> Item | None:
        return {{ cookiecutter.__await }}self.session.get(Item, item_id)

    {{ cookiecutter.__async }}def get_to_change(self, item_id: int) -> Item | None:
        """The item, locked until the transaction ends: a concurrent change waits its turn."""
        return {{ cookiecutter.__await }}self.session.get(Item, item_id, with_for_update=True)

    {{ cookiecutter.__async }}def page(self, *, offset: int, limit: int) -> tuple[Sequence[Item], int]:
        total = {{ cookiecutter.__await }}self.session.scalar(select(func.count()).select_from(Item))
        query = select(Item).order_by(Item.id).offset(offset).limit(limit)
        items = {{ cookiecutter.__await }}self.session.scalars(query)
        return items.all(), total or 0

    {{ cookiecutter.__async }}def add(self, data: ItemCreate) -> Item:
        item = Item(**data.model_dump())
        self.session.add(item)
        {{ cookiecutter.__await }}self._flush(f"An item named {data.name!r} already exists.")
        return item

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
        try:
            {{ cookiecutter.__await }}self.session.flush()
        except IntegrityError as error:
            if is_unique_violation(error):
                raise ConflictError(conflict) from error
            raise
