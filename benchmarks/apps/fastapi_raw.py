"""FastAPI over the same raw asyncpg pool (no ORM): FastAPI's own share of the cost."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import asyncpg
from fastapi import FastAPI, HTTPException, Query
from pydantic import BaseModel, Field

pool: asyncpg.Pool


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    global pool
    size = int(os.environ["DB_POOL_SIZE"])
    pool = await asyncpg.create_pool(os.environ["ASYNCPG_URL"], min_size=size, max_size=size)
    yield
    await pool.close()


class ItemCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    description: str | None = None


class ItemRead(BaseModel):
    id: int
    name: str
    description: str | None


class ItemPage(BaseModel):
    items: list[ItemRead]
    next: str | None


app = FastAPI(lifespan=lifespan)


@app.get("/items/{item_id}")
async def get_item(item_id: int) -> ItemRead:
    row = await pool.fetchrow("SELECT id, name, description FROM items WHERE id = $1", item_id)
    if row is None:
        raise HTTPException(404, "not found")
    return ItemRead(**row)


@app.post("/items", status_code=201)
async def create_item(data: ItemCreate) -> ItemRead:
    row = await pool.fetchrow(
        "INSERT INTO items (name, description) VALUES ($1, $2) RETURNING id, name, description",
        data.name,
        data.description,
    )
    return ItemRead(**row)


@app.get("/items")
async def list_items(
    after: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=100)] = 50
) -> ItemPage:
    """A keyset page, as the variants page (its cursor is the plain id: nothing is signed)."""
    rows = await pool.fetch(
        "SELECT id, name, description FROM items WHERE id > $1 ORDER BY id LIMIT $2",
        after,
        limit + 1,
    )
    following = f"/items?limit={limit}&after={rows[limit - 1]['id']}" if len(rows) > limit else None
    return ItemPage(items=[ItemRead(**row) for row in rows[:limit]], next=following)
