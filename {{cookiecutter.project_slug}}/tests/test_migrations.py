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
import io
import shutil
{% if cookiecutter.database == "postgresql" %}
import subprocess
import sys
import threading
{% endif %}
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time
from decimal import Decimal
from itertools import count
from pathlib import Path
{% if cookiecutter.database == "postgresql" %}
from time import monotonic
{% endif %}
from typing import Any
{% if cookiecutter.database == "postgresql" %}
from uuid import uuid4
{% endif %}

import pytest
from alembic import command
from alembic.script import ScriptDirectory
{% if cookiecutter.database == "postgresql" %}
from sqlalchemy import (
    JSON,
    Connection,
    Integer,
    MetaData,
    Table,
    func,
    inspect,
    make_url,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError, IntegrityError
{% else %}
from alembic.util import CommandError
from sqlalchemy import JSON, Connection, Integer, MetaData, Table, func, inspect, select
{% endif %}

from {{ cookiecutter.package_name }}.db.engine import (
{% if cookiecutter.database == "sqlite" %}
    MigrationError,
{% endif %}
    build_engine,
{% if cookiecutter.database == "postgresql" %}
    error_code,
{% endif %}
    migration_transaction,
)

from .support import (
    PROJECT_DIR,
    alembic_config,
{% if cookiecutter.database == "postgresql" %}
    create_database_if_missing,
    drop_database,
{% endif %}
    empty_database,
    settings_for,
)

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
    if isinstance(column.type, JSON):
        return {"row": n}
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


def offline_sql(database_url: str) -> str:
    """What ``alembic upgrade head --sql`` writes."""
    config = alembic_config(database_url)
    config.output_buffer = io.StringIO()
    command.upgrade(config, "head", sql=True)
    return config.output_buffer.getvalue()
{% if cookiecutter.database == "postgresql" %}


{{ cookiecutter.__async }}def run_script(database_url: str, script: str) -> None:
    """``script``, several statements, sent as psql sends a file (the simple query protocol)."""
    engine = build_engine(settings_for(database_url))
    try:
        {{ cookiecutter.__async }}with engine.connect() as connection:
            {{ cookiecutter.__await }}connection.execution_options(isolation_level="AUTOCOMMIT")
{% if is_async %}
            driver = (await connection.get_raw_connection()).driver_connection
{% else %}
            driver = connection.connection.driver_connection
{% endif %}
            assert driver is not None
            {{ cookiecutter.__await }}driver.execute(script)
    finally:
        {{ cookiecutter.__await }}engine.dispose()


def test_the_offline_sql_builds_what_the_models_describe(database_url: str) -> None:
    """The SQL a DBA reviews and applies builds the schema the online run builds, its
    timeouts set before the first change."""
    script = offline_sql(database_url)
    assert script.index("SET LOCAL lock_timeout") < script.index("CREATE TABLE")
    assert script.index("SET LOCAL statement_timeout") < script.index("CREATE TABLE")
    # A name of its own: the test database's, suffixed, could pass PostgreSQL's 63 bytes.
    empty = make_url(database_url).set(database=f"offline_{uuid4().hex}").render_as_string(False)
    {{ "asyncio.run(create_database_if_missing(empty))" if is_async else "create_database_if_missing(empty)" }}
    try:
        {{ "asyncio.run(run_script(empty, script))" if is_async else "run_script(empty, script)" }}
        command.check(alembic_config(empty))  # raises if the models differ from its schema
        head = ScriptDirectory.from_config(alembic_config(empty)).get_current_head()
        assert on_the_database(empty, current_revision) == head
    finally:
        {{ "asyncio.run(drop_database(empty))" if is_async else "drop_database(empty)" }}


def test_a_migration_behind_a_long_transaction_fails_fast_and_changes_nothing(
    stairway_database: str,
) -> None:
    """Its ALTER TABLE queued behind a transaction that read the table, a migration would
    hold every later query of that table behind it: it gives up after the lock timeout."""
    config = alembic_config(stairway_database)
    config.attributes["settings"] = settings_for(stairway_database, migration_lock_timeout=0.2)
    command.downgrade(config, "0003")  # below 0005, which alters items
    reading, done = threading.Event(), threading.Event()

    {{ cookiecutter.__async }}def read_and_stay() -> None:
        engine = build_engine(settings_for(stairway_database))
        try:
            {{ cookiecutter.__async }}with engine.connect() as connection, connection.begin():
                {{ cookiecutter.__await }}connection.execute(text("SELECT count(*) FROM items"))
                reading.set()
                done.wait(30)
        finally:
            {{ cookiecutter.__await }}engine.dispose()

    reader = threading.Thread(target={{ "lambda: asyncio.run(read_and_stay())" if is_async else "read_and_stay" }})
    reader.start()
    try:
        assert reading.wait(30)
        started = monotonic()
        with pytest.raises(DBAPIError) as failed:
            command.upgrade(config, "head")
        took = monotonic() - started
    finally:
        done.set()
        reader.join()

    assert error_code(failed.value) == "55P03"  # lock_not_available
    assert took < 5
    assert on_the_database(stairway_database, current_revision) == "0003"


def current_revision(connection: Connection) -> str:
    return str(connection.scalar(text("SELECT version_num FROM alembic_version")))


def test_the_offline_sql_passes_squawk(database_url: str) -> None:
    """PostgreSQL's migration linter, under the rules of .squawk.toml (the README says why)."""
    squawk = Path(sys.executable).with_name("squawk")
    linted = subprocess.run(
        [squawk, "--reporter", "gcc", "--stdin-filepath", "upgrade.sql"],
        input=offline_sql(database_url),
        capture_output=True,
        text=True,
        cwd=PROJECT_DIR,
        check=False,
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr
{% else %}


def test_the_offline_sql_is_refused_saying_why(database_url: str) -> None:
    with pytest.raises(CommandError, match="foreign keys off"):
        offline_sql(database_url)
{% endif %}
