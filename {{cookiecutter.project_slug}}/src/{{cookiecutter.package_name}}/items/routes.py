"""The ``/items`` endpoints."""

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Body, Response, status

from ..http import Id, IfMatch, etag, not_found, require_etag
from ..paging import Page, PageQuery
from ..session import SessionDep
from .models import Item
from .repository import ItemRepository
from .schemas import ItemCreate, ItemHistory, ItemRead, ItemUpdate
from .tasks import announce_change

router = APIRouter(prefix="/items", tags=["items"])


# The endpoints answer the stored items; response_model says what of them the client sees.
@router.post("", status_code=status.HTTP_201_CREATED, response_model=ItemRead)
{{ cookiecutter.__async }}def create_item(data: ItemCreate, session: SessionDep, response: Response) -> Item:
    item = {{ cookiecutter.__await }}ItemRepository(session).add(data)
    response.headers["ETag"] = etag(item.version)
    return item


@router.post("/bulk", status_code=status.HTTP_201_CREATED, response_model=list[ItemRead])
{{ cookiecutter.__async }}def create_items(
    data: Annotated[list[ItemCreate], Body(min_length=1, max_length=100)],
    session: SessionDep,
) -> Sequence[Item]:
    """Create all the items or none of them."""
    return {{ cookiecutter.__await }}ItemRepository(session).add_all(data)


@router.get("", response_model=Page[ItemRead])
{{ cookiecutter.__async }}def list_items(session: SessionDep, page: PageQuery, response: Response) -> dict[str, object]:
    """The items in id order, a page at a time: follow ``next`` for the rest."""
    repository = ItemRepository(session)
    items = {{ cookiecutter.__await }}repository.page(after=page.after, limit=page.fetch)
    total = {{ cookiecutter.__await }}repository.count(up_to=page.count_up_to) if page.counting else None
    return page.answer(items, response, total=total)


# {item_id:id}: only digits route here (http.py), so /items/bulk is never taken for an id.
@router.get("/{item_id:id}", response_model=ItemRead)
{{ cookiecutter.__async }}def get_item(item_id: Id, session: SessionDep, response: Response) -> Item:
    item = {{ cookiecutter.__await }}ItemRepository(session).get(item_id)
    if item is None:
        raise not_found(f"Item {item_id}")
    response.headers["ETag"] = etag(item.version)
    return item


@router.get("/{item_id:id}/history", response_model=ItemHistory)
{{ cookiecutter.__async }}def get_item_history(item_id: Id, session: SessionDep) -> Item:
    """The item and what happened to it, oldest first."""
    item = {{ cookiecutter.__await }}ItemRepository(session).get_with_events(item_id)
    if item is None:
        raise not_found(f"Item {item_id}")
    return item


{{ cookiecutter.__async }}def _get_to_change(repository: ItemRepository, item_id: int, if_match: str | None) -> Item:
    """The item, locked for the change; 412 unless it is the version ``if_match`` names."""
    item = {{ cookiecutter.__await }}repository.get_to_change(item_id)
    if item is None:
        raise not_found(f"Item {item_id}")
    require_etag(if_match, etag(item.version))
    return item


@router.patch("/{item_id:id}", response_model=ItemRead)
{{ cookiecutter.__async }}def update_item(
    item_id: Id,
    changes: ItemUpdate,
    session: SessionDep,
    background: BackgroundTasks,
    response: Response,
    if_match: IfMatch = None,
) -> Item:
    repository = ItemRepository(session)
    item = {{ cookiecutter.__await }}_get_to_change(repository, item_id, if_match)
    {{ cookiecutter.__await }}repository.update(item, changes)
    response.headers["ETag"] = etag(item.version)
    background.add_task(announce_change, item_id, "updated")
    return item


@router.delete(
    "/{item_id:id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,  # no body, so no content type
)
{{ cookiecutter.__async }}def delete_item(
    item_id: Id,
    session: SessionDep,
    background: BackgroundTasks,
    if_match: IfMatch = None,
) -> None:
    repository = ItemRepository(session)
    {{ cookiecutter.__await }}repository.delete({{ cookiecutter.__await }}_get_to_change(repository, item_id, if_match))
    background.add_task(announce_change, item_id, "deleted")
