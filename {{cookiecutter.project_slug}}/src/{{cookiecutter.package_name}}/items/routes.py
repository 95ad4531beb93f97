"""The ``/items`` endpoints."""

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Body, HTTPException, Response, status

from ..session import DatabaseDep, SessionDep
from .models import Item
from .repository import ItemRepository, StoredItem
from .schemas import (
    IfMatch,
    ItemCreate,
    ItemId,
    ItemPage,
    ItemRead,
    ItemUpdate,
    Limit,
    Offset,
)
from .tasks import record_event

router = APIRouter(
    prefix="/items",
    tags=["items"],
    responses={503: {"description": "The database is unavailable; try again later"}},
)

BODY: dict[int | str, dict[str, Any]] = {
    400: {"description": "The body is not JSON"},
    413: {"description": "The body is larger than MAX_REQUEST_BODY"},
}
CONFLICT: dict[int | str, dict[str, Any]] = {409: {"description": "The name is already taken"}}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No item has this id"}}
CHANGED: dict[int | str, dict[str, Any]] = {
    412: {"description": "The item changed since the ETag in If-Match"}
}


def etag(item: Item | StoredItem) -> str:
    return f'"{item.version}"'


{{ cookiecutter.__async }}def _get_or_404(repository: ItemRepository, item_id: int) -> StoredItem:
    item = {{ cookiecutter.__await }}repository.get(item_id)
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Item {item_id} not found.")
    return item


{{ cookiecutter.__async }}def _get_to_change(repository: ItemRepository, item_id: int, if_match: str | None) -> Item:
    """The item, locked for the change; 412 unless it is the version ``if_match`` names.

    Without If-Match the change applies to whatever is stored: the last writer wins.
    """
    item = {{ cookiecutter.__await }}repository.get_to_change(item_id)
    if item is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Item {item_id} not found.")
    tags = {tag.strip() for tag in (if_match or "*").split(",")}
    if "*" not in tags and etag(item) not in tags:
        raise HTTPException(
            status.HTTP_412_PRECONDITION_FAILED,
            f"Item {item_id} changed since: its ETag is {etag(item)}.",
            headers={"ETag": etag(item)},
        )
    return item


@router.post("", status_code=status.HTTP_201_CREATED, responses={**BODY, **CONFLICT})
{{ cookiecutter.__async }}def create_item(data: ItemCreate, session: SessionDep, response: Response) -> ItemRead:
    item = {{ cookiecutter.__await }}ItemRepository(session).add(data)
    response.headers["ETag"] = etag(item)
    return ItemRead.model_validate(item)


@router.post("/bulk", status_code=status.HTTP_201_CREATED, responses={**BODY, **CONFLICT})
{{ cookiecutter.__async }}def create_items(
    data: Annotated[list[ItemCreate], Body(min_length=1, max_length=100)],
    session: SessionDep,
) -> list[ItemRead]:
    """Create all the items or none of them."""
    items = {{ cookiecutter.__await }}ItemRepository(session).add_all(data)
    return [ItemRead.model_validate(item) for item in items]


@router.get("")
{{ cookiecutter.__async }}def list_items(
    session: SessionDep,
    offset: Offset = 0,
    limit: Limit = 50,
) -> ItemPage:
    items, total = {{ cookiecutter.__await }}ItemRepository(session).page(offset=offset, limit=limit)
    return ItemPage(items=[ItemRead.model_validate(item) for item in items], total=total)


# {item_id:int}: only digits route here, so /items/bulk is never taken for an id.
@router.get("/{item_id:int}", responses=NOT_FOUND)
{{ cookiecutter.__async }}def get_item(item_id: ItemId, session: SessionDep, response: Response) -> ItemRead:
    item = {{ cookiecutter.__await }}_get_or_404(ItemRepository(session), item_id)
    response.headers["ETag"] = etag(item)
    return ItemRead.model_validate(item)


@router.patch("/{item_id:int}", responses={**BODY, **NOT_FOUND, **CONFLICT, **CHANGED})
{{ cookiecutter.__async }}def update_item(
    item_id: ItemId,
    changes: ItemUpdate,
    session: SessionDep,
    database: DatabaseDep,
    background: BackgroundTasks,
    response: Response,
    if_match: IfMatch = None,
) -> ItemRead:
    repository = ItemRepository(session)
    item = {{ cookiecutter.__await }}_get_to_change(repository, item_id, if_match)
    updated = {{ cookiecutter.__await }}repository.update(item, changes)
    response.headers["ETag"] = etag(updated)
    background.add_task(record_event, database, item_id, "updated")
    return ItemRead.model_validate(updated)


@router.delete(
    "/{item_id:int}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,  # no body, so no content type
    responses={**NOT_FOUND, **CHANGED},
)
{{ cookiecutter.__async }}def delete_item(
    item_id: ItemId,
    session: SessionDep,
    database: DatabaseDep,
    background: BackgroundTasks,
    if_match: IfMatch = None,
) -> None:
    repository = ItemRepository(session)
    {{ cookiecutter.__await }}repository.delete({{ cookiecutter.__await }}_get_to_change(repository, item_id, if_match))
    background.add_task(record_event, database, item_id, "deleted")
