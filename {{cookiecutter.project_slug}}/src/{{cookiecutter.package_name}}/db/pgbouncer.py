{% set is_async = cookiecutter.driver == "async" %}
"""Connections through PgBouncer in transaction mode: ``?plugin=pgbouncer`` in a database URL.

PgBouncer in transaction mode lends a client a server connection for one
transaction at a time, so consecutive transactions of one connection of the
service may run on different server connections. Nothing may rely on what a
server connection keeps between transactions, so an engine whose URL names
this plugin (a SQLAlchemy ``CreateEnginePlugin``, registered in
``pyproject.toml``) connects differently:

{% if is_async %}
- asyncpg prepares every statement, in an exchange of its own before the one
  that runs it: each gets a name of its own, and neither asyncpg nor
  SQLAlchemy keeps a cache of them (SQLAlchemy's documented recipe), and a
  read-only unit of work keeps its transaction instead of running in
  autocommit, so that its two exchanges reach the same server connection;
{% else %}
- psycopg 3 prepares a statement once it ran it five times: that is switched
  off;
{% endif %}
- the guards ``DB_STATEMENT_TIMEOUT`` and ``DB_IDLE_IN_TRANSACTION_TIMEOUT``
  are not sent as startup parameters, which PgBouncer refuses: set them on the
  role instead (``ALTER ROLE ... SET statement_timeout = '30s'``).

Any engine built from such a URL is, the service's own and its tools' alike.
"""

from typing import Any
{% if is_async %}
from uuid import uuid4
{% endif %}

{% if is_async %}
from sqlalchemy import Engine, event
{% endif %}
from sqlalchemy.engine import URL, CreateEnginePlugin

{% if is_async %}
_NO_CACHED_STATEMENTS: dict[str, Any] = {
    "statement_cache_size": 0,
    "prepared_statement_cache_size": 0,
    "prepared_statement_name_func": lambda: f"__asyncpg_{uuid4()}__",
}
{% endif %}
# The startup parameters PgBouncer does not pass on, but refuses.
_GUARDS = ("statement_timeout", "idle_in_transaction_session_timeout")


class PgBouncer(CreateEnginePlugin):
    """What an engine connecting through PgBouncer in transaction mode changes (see above)."""

    def __init__(self, url: URL, kwargs: dict[str, Any]) -> None:
        super().__init__(url, kwargs)
        connect_args = dict(kwargs.get("connect_args", {}))
{% if is_async %}
        settings = dict(connect_args.get("server_settings", {}))
        for guard in _GUARDS:
            settings.pop(guard, None)
        kwargs["connect_args"] = {
            **connect_args,
            "server_settings": settings,
            **_NO_CACHED_STATEMENTS,
        }
{% else %}
        connect_args.pop("options", None)  # -c statement_timeout=... -c idle_in_...
        kwargs["connect_args"] = {**connect_args, "prepare_threshold": None}
{% endif %}

    def update_url(self, url: URL) -> URL:
        return url  # SQLAlchemy takes ?plugin= out itself
{% if is_async %}

    def engine_created(self, engine: Engine) -> None:
        @event.listens_for(engine, "set_connection_execution_options")
        def keep_the_transaction(_connection: Any, options: dict[str, Any]) -> None:
            # A read-only unit's statements, prepared and run, reach one server connection.
            if options.get("isolation_level") == "AUTOCOMMIT":
                del options["isolation_level"]
{% endif %}
