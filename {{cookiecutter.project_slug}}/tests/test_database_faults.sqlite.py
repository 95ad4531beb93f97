{% set is_async = cookiecutter.driver == "async" %}
"""Real SQLite failures, each caused for real, each answered as ``errors.py`` promises.

- unavailable (the disk full, the database read-only): 503 with ``Retry-After: 5``;
- the write lock not granted within the busy timeout, a lost race: 503 with
  ``Retry-After: 1``;
- nothing the client sent reaches an error's message.
"""

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from httpx2 import Response
from sqlalchemy import event, make_url, text
from sqlalchemy.exc import DBAPIError

from {{ cookiecutter.package_name }}.db.engine import build_engine, failure_of
from {{ cookiecutter.package_name }}.db.errors import Failure
from {{ cookiecutter.package_name }}.settings import Settings

from .support import client_of, running_app

PRIVATE = "private description"


def assert_try_again(response: Response, seconds: str, detail: str) -> None:
    assert response.status_code == 503
    assert response.headers["retry-after"] == seconds
    assert response.json() == {"detail": detail}


@asynccontextmanager
async def every_new_connection(app: FastAPI, pragma: str) -> AsyncIterator[None]:
    """The app's pooled connections closed, and ``pragma`` (statements separated by
    ``;``) run on each new one."""
    engine = app.state.database.engine

    def run_pragma(dbapi_connection: Any, _record: Any) -> None:
        for statement in pragma.split(";"):
            pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
            dbapi_connection.execute(statement.format(pages=pages))

    {{ cookiecutter.__await }}engine.dispose()
    event.listen(engine{{ ".sync_engine" if is_async }}, "connect", run_pragma)
    try:
        yield
    finally:
        event.remove(engine{{ ".sync_engine" if is_async }}, "connect", run_pragma)


async def test_a_full_disk_is_a_503(settings: Settings) -> None:
    rows = [{"name": f"n{n}", "description": "x" * 4000} for n in range(50)]
    # SQLite's own "database or disk is full", at the size the database has now, its free
    # pages (what earlier tests deleted) given back first, so that no row fits.
    full = "VACUUM; PRAGMA max_page_count = {pages}"
    async with (
        running_app(settings) as app,
        client_of(app) as client,
        every_new_connection(app, full),
    ):
        response = await client.post("/items/bulk", json=rows)

    assert_try_again(response, "5", "The database is unavailable, try again later.")


async def test_a_read_only_database_answers_reads_and_refuses_writes_with_a_503(
    settings: Settings,
) -> None:
    async with (
        running_app(settings) as app,
        client_of(app) as client,
        every_new_connection(app, "PRAGMA query_only = ON"),
    ):
        read = await client.get("/items")
        write = await client.post("/items", json={"name": "Widget"})

    assert read.status_code == 200
    assert_try_again(write, "5", "The database is unavailable, try again later.")


async def test_the_write_lock_not_granted_in_time_is_a_503_to_retry_soon(
    settings: Settings,
) -> None:
    other = sqlite3.connect(str(make_url(settings.database_url).database), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        async with running_app(settings, db_pool_timeout=0.3) as app, client_of(app) as client:
            response = await client.post("/items", json={"name": "Widget"})
    finally:
        other.execute("ROLLBACK")
        other.close()

    assert_try_again(response, "1", "The request collided with another; try it again.")


async def failed_statement(settings: Settings, sql: str, **params: object) -> DBAPIError:
    engine = build_engine(settings)
    try:
        {{ cookiecutter.__async }}with engine.connect() as connection:
            {{ cookiecutter.__await }}connection.execute(text(sql), params)
    except DBAPIError as error:
        return error
    finally:
        {{ cookiecutter.__await }}engine.dispose()
    raise AssertionError(f"{sql} succeeded")


async def test_sql_parameters_never_reach_an_error_message(settings: Settings) -> None:
    error = await failed_statement(settings, "SELECT * FROM nowhere WHERE x = :x", x=PRIVATE)

    assert failure_of(error) is Failure.INTERNAL
    assert PRIVATE not in str(error)
    assert "parameters hidden" in str(error)
