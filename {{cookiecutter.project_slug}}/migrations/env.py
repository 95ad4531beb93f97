{% set is_async = cookiecutter.driver == "async" %}
"""Alembic's entry point: runs the migrations over the service's own engine."""

{% if is_async %}
import asyncio
{% endif %}
from logging.config import fileConfig
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from alembic.operations.ops import MigrationScript
from alembic.runtime.migration import MigrationContext
{% if cookiecutter.database == "sqlite" %}
from alembic.util import CommandError
{% endif %}
from sqlalchemy import Connection
from sqlalchemy.types import TypeDecorator

from {{ cookiecutter.package_name }}.db.base import Base
from {{ cookiecutter.package_name }}.db.engine import (
    build_engine,
    migration_transaction,
)
from {{ cookiecutter.package_name }}.db.models import import_models
from {{ cookiecutter.package_name }}.settings import Settings, get_settings

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name)

# Every table of every models module, wherever in the package it lives.
import_models()
target_metadata = Base.metadata


def settings() -> Settings:
    """The service's settings, or those a caller passes in ``config.attributes`` (the tests)."""
    given: Settings | None = config.attributes.get("settings")
    return get_settings() if given is None else given


{% if cookiecutter.database == "postgresql" %}
def bound_the_waits() -> None:
    """A migration waits for a table's lock at most ``MIGRATION_LOCK_TIMEOUT`` seconds and
    runs a statement at most ``MIGRATION_STATEMENT_TIMEOUT``, then fails and changes
    nothing: an ``ALTER TABLE`` queued behind a long transaction would hold every later
    query of its table behind it. Set in the run's transaction, online and offline."""
    given = settings()
    for name, seconds in [
        ("lock_timeout", given.migration_lock_timeout),
        ("statement_timeout", given.migration_statement_timeout),
    ]:
        context.execute(f"SET LOCAL {name} = {round(seconds * 1000)}")


{% endif %}
def run_migrations_offline() -> None:
{% if cookiecutter.database == "postgresql" %}
    """Write the SQL to stdout instead of running it (``alembic upgrade head --sql``)."""
    context.configure(
        url=settings().database_url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        bound_the_waits()
        context.run_migrations()
{% else %}
    """``alembic upgrade --sql`` is refused: SQLite's migrations need the database file."""
    raise CommandError(
        "SQLite's migrations run on the database file (alembic upgrade head), not as SQL"
        " written ahead: rebuilding a table (batch mode) reads it first, and the run turns"
        " foreign keys off around the rebuild (migration_transaction in db/engine.py),"
        " without which dropping the old table would delete its children's rows."
    )
{% endif %}


def skip_empty_revision(
    _context: MigrationContext, _revision: object, directives: list[MigrationScript]
) -> None:
    """``alembic revision --autogenerate`` writes no file when the models did not change."""
    script = directives[0]
    autogenerate = getattr(config.cmd_opts, "autogenerate", False)
    if autogenerate and script.upgrade_ops is not None and script.upgrade_ops.is_empty():
        directives.clear()
        print("The models match the database: no migration written.")


def render_item(type_: str, obj: Any, _context: AutogenContext) -> str | Literal[False]:
    """A column type of the service's own (``db/types.py``) goes into a migration as the
    type it stores, so that the migration keeps working whatever becomes of the class."""
    if type_ == "type" and isinstance(obj, TypeDecorator):
        return f"sa.{obj.impl_instance!r}"
    return False


def do_run_migrations(connection: Connection) -> None:
    # One transaction for the whole run (Alembic joins it): a failure changes nothing.
    with migration_transaction(connection):
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
{% if cookiecutter.database == "sqlite" %}
            render_as_batch=True,
{% endif %}
            process_revision_directives=skip_empty_revision,
            render_item=render_item,
        )
{% if cookiecutter.database == "postgresql" %}
        bound_the_waits()
{% endif %}
        context.run_migrations()


{% if is_async %}
async def run_migrations_online() -> None:
    engine = build_engine(settings())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
{% else %}
def run_migrations_online() -> None:
    engine = build_engine(settings())
    try:
        with engine.connect() as connection:
            do_run_migrations(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
{% endif %}
