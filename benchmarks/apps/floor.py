"""The floor: a minimal Starlette app over a raw asyncpg pool, the same SQL as the service."""

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

pool: asyncpg.Pool


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    global pool
    size = int(os.environ["DB_POOL_SIZE"])
    pool = await asyncpg.create_pool(os.environ["ASYNCPG_URL"], min_size=size, max_size=size)
    yield
    await pool.close()


async def get_item(request: Request) -> Response:
    row = await pool.fetchrow(
        "SELECT id, name, description FROM items WHERE id = $1", int(request.path_params["id"])
    )
    if row is None:
        return JSONResponse({"detail": "not found"}, status_code=404)
    return JSONResponse(dict(row))


async def create_item(request: Request) -> Response:
    body = json.loads(await request.body())
    row = await pool.fetchrow(
        "INSERT INTO items (name, description) VALUES ($1, $2) RETURNING id, name, description",
        body["name"],
        body.get("description"),
    )
    return JSONResponse(dict(row), status_code=201)


async def list_items(request: Request) -> Response:
    """A keyset page, as the variants page: the rows after ``after``, one more to know
    whether a next page exists (its cursor is the plain id: nothing is signed here)."""
    limit = int(request.query_params.get("limit", 50))
    after = int(request.query_params.get("after", 0))
    rows = await pool.fetch(
        "SELECT id, name, description FROM items WHERE id > $1 ORDER BY id LIMIT $2",
        after,
        limit + 1,
    )
    following = f"/items?limit={limit}&after={rows[limit - 1]['id']}" if len(rows) > limit else None
    return JSONResponse({"items": [dict(row) for row in rows[:limit]], "next": following})


app = Starlette(
    routes=[
        Route("/items/{id:int}", get_item),
        Route("/items", create_item, methods=["POST"]),
        Route("/items", list_items, methods=["GET"]),
    ],
    lifespan=lifespan,
)
