"""FastAPI + SQLAlchemy as the popular tutorials write it: the reference a user would pick.

A ``yield`` dependency with the default scope (it commits after the response
was sent), ``pool_pre_ping``, ORM reads, response models. With
``SESSION=middleware`` the session comes from a ``BaseHTTPMiddleware`` instead.
"""

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from starlette.middleware.base import BaseHTTPMiddleware
from tutorial_models import Item, ItemCreate, ItemPage, ItemRead

engine = create_async_engine(
    os.environ["DATABASE_URL"],
    pool_size=int(os.environ["DB_POOL_SIZE"]),
    max_overflow=int(os.environ["DB_MAX_OVERFLOW"]),
    pool_pre_ping=True,
)
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)

app = FastAPI()

if os.environ.get("SESSION") == "middleware":

    class DBSessionMiddleware(BaseHTTPMiddleware):
        async def dispatch(
            self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
        ) -> Response:
            async with SessionLocal() as session:
                request.state.db = session
                response = await call_next(request)
                await session.commit()
                return response

    app.add_middleware(DBSessionMiddleware)

    async def get_db(request: Request) -> AsyncSession:
        session: AsyncSession = request.state.db
        return session

else:

    async def get_db() -> AsyncIterator[AsyncSession]:  # type: ignore[misc]
        async with SessionLocal() as session:
            try:
                yield session
                await session.commit()
            except Exception:
                await session.rollback()
                raise


DB = Annotated[AsyncSession, Depends(get_db)]


@app.get("/items/{item_id}", response_model=ItemRead)
async def get_item(item_id: int, db: DB) -> Item:
    item = await db.get(Item, item_id)
    if item is None:
        raise HTTPException(404, "not found")
    return item


@app.post("/items", status_code=201, response_model=ItemRead)
async def create_item(data: ItemCreate, db: DB) -> Item:
    item = Item(**data.model_dump())
    db.add(item)
    await db.flush()
    return item


@app.get("/items", response_model=ItemPage)
async def list_items(
    db: DB, offset: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=100)] = 50
) -> dict[str, object]:
    total = await db.scalar(select(func.count()).select_from(Item))
    items = (await db.scalars(select(Item).order_by(Item.id).offset(offset).limit(limit))).all()
    return {"items": items, "total": total}
