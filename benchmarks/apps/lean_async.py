"""The lean tutorial pattern, async: the least a FastAPI + SQLAlchemy service does.

A ``yield`` dependency hands out a session and closes it; the endpoint
commits; ``session.get`` reads; ``refresh`` after the commit reloads what was
created. No pre-ping, no middleware, no read-only units, no error mapping:
the anchor the variants' own layers are measured against.
"""

import os
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Query
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from tutorial_models import Item, ItemCreate, ItemPage, ItemRead

engine = create_async_engine(
    os.environ["DATABASE_URL"],
    pool_size=int(os.environ["DB_POOL_SIZE"]),
    max_overflow=int(os.environ["DB_MAX_OVERFLOW"]),
)
SessionLocal = async_sessionmaker(engine)


async def get_session() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]
app = FastAPI()


@app.get("/items/{item_id}", response_model=ItemRead)
async def get_item(item_id: int, session: SessionDep) -> Item:
    item = await session.get(Item, item_id)
    if item is None:
        raise HTTPException(404, "not found")
    return item


@app.post("/items", status_code=201, response_model=ItemRead)
async def create_item(data: ItemCreate, session: SessionDep) -> Item:
    item = Item(**data.model_dump())
    session.add(item)
    await session.commit()
    await session.refresh(item)
    return item


@app.get("/items", response_model=ItemPage)
async def list_items(
    session: SessionDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> dict[str, object]:
    total = await session.scalar(select(func.count()).select_from(Item))
    items = (
        await session.scalars(select(Item).order_by(Item.id).offset(offset).limit(limit))
    ).all()
    return {"items": items, "total": total}
