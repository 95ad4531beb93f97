{% set is_async = cookiecutter.driver == "async" %}
"""Alembic's entry point: runs the migrations over the service's own engine."""

{% if is_async %}
import asyncio
{% endif %}
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from {{ cookiecutter.package_name }}.db.base import Base
from {{ cookiecutter.package_name }}.db.engine import build_engine
from {{ cookiecutter.package_name }}.items import models as _items  # noqa: F401  (registers the table)
from {{ cookiecutter.package_name }}.settings import Settings, get_settings

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name)

target_metadata = Base.metadata


def settings() -> Settings:
    """The service's settings; a caller may pin the URL in ``config.attributes``."""
    url = config.attributes.get("database_url")
    return get_settings() if url is None else Settings(database_url=url)


def run_migrations_offline() -> None:
    """Write the SQL to stdout instead of running it (``alembic upgrade head --sql``)."""
    context.configure(
        url=settings().database_url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
{% if cookiecutter.database == "sqlite" %}
        render_as_batch=True,
{% endif %}
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
{% if cookiecutter.database == "sqlite" %}
        render_as_batch=True,
{% endif %}
    )
    with context.begin_transaction():
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
