{% set is_async = cookiecutter.driver == "async" %}
"""Sessions that join a test's transaction instead of owning one."""

{% if is_async %}
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker


def joining_sessionmaker(connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    """Sessions inside ``connection``'s transaction: their commit only releases a SAVEPOINT."""
    return async_sessionmaker(
        connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )
{% else %}
from sqlalchemy import Connection
from sqlalchemy.orm import Session, sessionmaker


def joining_sessionmaker(connection: Connection) -> sessionmaker[Session]:
    """Sessions inside ``connection``'s transaction: their commit only releases a SAVEPOINT."""
    return sessionmaker(
        connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )
{% endif %}
