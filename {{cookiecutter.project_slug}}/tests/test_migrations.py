{% set is_async = cookiecutter.driver == "async" %}
"""The migrations, one revision at a time, with rows in every table: nothing is lost.

The stairway goes up each revision, fills every table with a row, goes down
and up that revision again, and checks that every row of every table that
lived through it is still there, and that each table's next id is above
every id it ever handed out. A new model's table and its migration are
covered as soon as they exist: the rows are made from the tables as the
database describes them (``row_for``).
"""

import argparse
import asyncio
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time
from decimal import Decimal
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Integer, MetaData, Table, func, inspect, select
{% if cookiecutter.database == "postgresql" %}
from sqlalchemy.exc import IntegrityError
{% endif %}

from {{ cookiecutter.package_name }}.db.engine import (
{% if cookiecutter.database == "sqlite" %}
    MigrationError,
{% endif %}
    build_engine,
    migration_transaction,
)

from .support import PROJECT_DIR, alembic_config, empty_database, settings_for

UNIQUE = count(1)  # values no other row of a column has


def on_the_database(
    database_url: str, work: Callable[[Connection], Any], *, transaction: bool = True
) -> Any:
    """``work`` on a connection of its own, in a transaction committed after it (or none)."""
{% if is_async %}

    async def run() -> Any:
        engine = build_engine(settings_for(database_url))
        try:
            async with engine.connect() as connection:
                if not transaction:
                    return await connection.run_sync(work)
                async with connection.begin():
                    return await connection.run_sync(work)
        finally:
            await engine.dispose()

    return asyncio.run(run())
{% else %}
    engine = build_engine(settings_for(database_url))
    try:
        with engine.connect() as connection:
            if not transaction:
                return work(connection)
            with connection.begin():
                return work(connection)
    finally:
        engine.dispose()
{% endif %}


def tables(connection: Connection) -> list[Table]:
    """The tables the database has now, parents before children."""
    metadata = MetaData()
    metadata.reflect(connection)
    return [table for table in metadata.sorted_tables if table.name != "alembic_version"]


def sample(column: Any) -> Any:
    """A value of ``column``'s type that no other row has."""
    n = next(UNIQUE)
    enums = getattr(column.type, "enums", None)
    if enums:
        return enums[n % len(enums)]
    kind = column.type.python_type
    values: dict[type, Any] = {
        bool: n % 2 == 0,
        int: n,
        float: n + 0.5,
        Decimal: Decimal(n) / 4,
        str: f"row {n}"[: getattr(column.type, "length", None)],
        bytes: f"row {n}".encode(),
        datetime: datetime(2026, 1, 1, tzinfo=UTC),
        date: date(2026, 1, 1),
        time: time(12),
    }
    return values[kind]


def row_for(connection: Connection, table: Table) -> dict[str, Any]:
    """The values of a new row of ``table``: each foreign key names an existing row."""
    row = {}
    for column in table.columns:
        if column.foreign_keys:
            (key,) = column.foreign_keys
            row[column.name] = connection.scalar(select(key.column).order_by(key.column).limit(1))
        elif column.primary_key and isinstance(column.type, Integer):
            continue  # the database hands it out
        elif not column.nullable and column.server_default is None:
            row[column.name] = sample(column)
    return row


def fill(connection: Connection) -> dict[str, list[int]]:
    """Two new rows in every table, the newest deleted again (its id is one that a
    table which forgot its highest id would hand out again); the ids handed out."""
    handed_out: dict[str, list[int]] = {}
    for table in tables(connection):
        for _ in range(2):
            result = connection.execute(table.insert().values(row_for(connection, table)))
            key = result.inserted_primary_key
            assert key is not None
            for id_column in own_ids(table):
                handed_out.setdefault(table.name, []).append(key._mapping[id_column.name])
    for table in reversed(tables(connection)):
        for id_column in own_ids(table):
            newest = select(func.max(id_column)).scalar_subquery()
            connection.execute(table.delete().where(id_column == newest))
    return handed_out


def own_ids(table: Table) -> list[Any]:
    """The integer id column the database hands out for ``table``, if it has one."""
    return [
        column
        for column in table.primary_key.columns
        if isinstance(column.type, Integer) and not column.foreign_keys
    ]


def keys(connection: Connection) -> dict[str, set[tuple[Any, ...]]]:
    """Every table's primary keys."""
    return {
        table.name: {tuple(row) for row in connection.execute(select(*table.primary_key.columns))}
        for table in tables(connection)
    }


@pytest.fixture
def stairway_database(database_url: str) -> Iterator[str]:
    """The test database, given back migrated and empty."""
    try:
        yield database_url
    finally:
        command.upgrade(alembic_config(database_url), "head")
        asyncio.run(empty_database(database_url))


def test_every_revision_goes_down_and_up_again_without_losing_a_row(
    stairway_database: str,
) -> None:
    config = alembic_config(stairway_database)
    revisions = [script.revision for script in ScriptDirectory.from_config(config).walk_revisions()]
    ever: dict[str, int] = {}  # the highest id each table handed out
    command.downgrade(config, "base")
    for revision in reversed(revisions):
        command.upgrade(config, revision)
        for table, ids in on_the_database(stairway_database, fill).items():
            ever[table] = max(ever.get(table, 0), *ids)
        before = on_the_database(stairway_database, keys)

        command.downgrade(config, "-1")
        below = on_the_database(stairway_database, keys)
        command.upgrade(config, revision)
        after = on_the_database(stairway_database, keys)

        for table in below:
            assert below[table] == before.get(table, below[table]), (revision, "down", table)
        for table in before.keys() & after.keys():
            kept = before[table] if table in below else set()
            assert kept <= after[table], (revision, "up", table)
        for table, ids in on_the_database(stairway_database, fill).items():
            if table in below:  # a table dropped and made again starts its ids anew
                assert min(ids) > ever[table], (revision, "an id handed out again", table)
            ever[table] = max(ids)


def test_a_migration_that_would_leave_a_row_pointing_nowhere_changes_nothing(
    database_url: str,
) -> None:
    def orphan(connection: Connection) -> None:
        with migration_transaction(connection):
            connection.exec_driver_sql("CREATE TABLE parents (id INTEGER PRIMARY KEY)")
            connection.exec_driver_sql(
                "CREATE TABLE children (id INTEGER PRIMARY KEY,"
                " parent_id INTEGER REFERENCES parents (id))"
            )
            connection.exec_driver_sql("INSERT INTO children VALUES (1, 42)")

    def tables_made(connection: Connection) -> set[str]:
        return {"parents", "children"} & set(inspect(connection).get_table_names())

    # SQLite checks before the commit; PostgreSQL's constraint refuses the row at once.
    with pytest.raises({{ "MigrationError" if cookiecutter.database == "sqlite" else "IntegrityError" }}):
        on_the_database(database_url, orphan, transaction=False)
    assert on_the_database(database_url, tables_made) == set()


def test_the_models_match_the_migrations(database_url: str) -> None:
    command.check(alembic_config(database_url))  # raises if autogenerate finds a change


def test_no_model_change_writes_no_migration(database_url: str, tmp_path: Path) -> None:
    config = alembic_config(database_url)
    versions = tmp_path / "migrations"
    shutil.copytree(PROJECT_DIR / "migrations", versions)
    config.set_main_option("script_location", str(versions))
    config.cmd_opts = argparse.Namespace(autogenerate=True)  # as `alembic revision --autogenerate`
    written = set((versions / "versions").glob("*.py"))

    command.revision(config, message="nothing changed", autogenerate=True)

    assert set((versions / "versions").glob("*.py")) == written
