"""The lean tutorial pattern, sync, as the most popular FastAPI template writes it.

Plain ``def`` endpoints (FastAPI runs them in its thread pool), a ``yield``
dependency that hands out a ``Session``; the endpoint commits, ``session.get``
reads, ``refresh`` after the commit reloads what was created. Served over
psycopg 3 (``DATABASE_URL`` is a ``postgresql+psycopg://`` URL).
"""

import os
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Query
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session
from tutorial_models import Item, ItemCreate, ItemPage, ItemRead

engine = create_engine(
    os.environ["DATABASE_URL"],
    pool_size=int(os.environ["DB_POOL_SIZE"]),
    max_overflow=int(os.environ["DB_MAX_OVERFLOW"]),
)


def get_session() -> Iterator[Session]:
    with Session(engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
app = FastAPI()


@app.get("/items/{item_id}", response_model=ItemRead)
def get_item(item_id: int, session: SessionDep) -> Item:
    item = session.get(Item, item_id)
    if item is None:
        raise HTTPException(404, "not found")
    return item


@app.post("/items", status_code=201, response_model=ItemRead)
def create_item(data: ItemCreate, session: SessionDep) -> Item:
    item = Item(**data.model_dump())
    session.add(item)
    session.commit()
    session.refresh(item)
    return item


@app.get("/items", response_model=ItemPage)
def list_items(
    session: SessionDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> dict[str, object]:
    total = session.scalar(select(func.count()).select_from(Item))
    items = session.scalars(select(Item).order_by(Item.id).offset(offset).limit(limit)).all()
    return {"items": items, "total": total}
