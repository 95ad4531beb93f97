{% set scheme = ("sqlite+" ~ ("aiosqlite" if cookiecutter.driver == "async" else "pysqlite")) if cookiecutter.database == "sqlite" else ("postgresql+" ~ ("asyncpg" if cookiecutter.driver == "async" else "psycopg")) %}
"""Settings, read from the environment and from a ``.env`` file.

Every setting is an environment variable of the same name, upper-cased; the
environment wins over ``.env``. Values are checked when the service starts:
``python -m {{ cookiecutter.package_name }}`` refuses to start on a bad one, with one line naming it.
"""

import difflib
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
{% if cookiecutter.jobs %}
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit
{% else %}
from typing import Annotated, Any, Literal
{% endif %}

{% if cookiecutter.metrics and cookiecutter.jobs %}
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
{% elif cookiecutter.metrics %}
from pydantic import AfterValidator, BeforeValidator, Field, SecretStr, ValidationError
{% elif cookiecutter.jobs %}
from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, model_validator
{% else %}
from pydantic import AfterValidator, BeforeValidator, Field, ValidationError
{% endif %}
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

# The name of the database the service uses by default.
DATABASE_NAME = "{{ cookiecutter.project_slug }}"
# The database and driver every DATABASE_URL must name, as SQLAlchemy spells them.
URL_SCHEME = "{{ scheme }}"
ENV_FILE = ".env"
# A variable's name on a line of .env: NAME=value, or export NAME=value.
_ENV_FILE_NAME = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=", re.M)


def _comma_separated(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip().lower() for item in value.split(",") if item.strip()]
    return value
{% if cookiecutter.metrics %}


def _none_if_empty(value: Any) -> Any:
    return None if value == "" else value
{% endif %}


def _of_this_variants_driver(url: str) -> str:
    try:
        parsed = make_url(url)
        dialect = parsed.get_dialect()
    except (ArgumentError, ValueError):
        raise ValueError(f"is not a database URL; expected {URL_SCHEME}://...") from None
    # sqlite:// names the same driver as sqlite+pysqlite://, postgresql:// as +psycopg.
    if f"{dialect.name}+{dialect.driver}" != URL_SCHEME:
        raise ValueError(f"names {parsed.drivername!r}; this service runs on {URL_SCHEME}://...")
    return url


DatabaseURL = Annotated[str, AfterValidator(_of_this_variants_driver)]
{% if cookiecutter.jobs %}


def _redis(url: str) -> str:
    if urlsplit(url).scheme not in {"redis", "rediss", "unix"}:
        raise ValueError("is not a Redis URL; expected redis://, rediss:// or unix://")
    return url


RedisURL = Annotated[str, AfterValidator(_redis)]
{% endif %}
{% if cookiecutter.read_replicas %}


def _urls(value: Any) -> Any:
    if isinstance(value, str):
        return [url.strip() for url in value.split(",") if url.strip()]
    return value


def _each_of_this_variants_driver(urls: list[str]) -> list[str]:
    for number, url in enumerate(urls, start=1):
        try:
            _of_this_variants_driver(url)
        except ValueError as error:
            raise ValueError(f"the URL number {number} {error}") from None
    return urls


DatabaseURLs = Annotated[
    list[str], NoDecode, BeforeValidator(_urls), AfterValidator(_each_of_this_variants_driver)
]
{% endif %}


class Settings(BaseSettings):
    """Every setting can be given as an environment variable of the same name, upper-cased."""

    model_config = SettingsConfigDict(env_file=ENV_FILE, env_file_encoding="utf-8", extra="ignore")

{% if cookiecutter.database == "sqlite" %}
    database_url: DatabaseURL = f"{URL_SCHEME}:///./{DATABASE_NAME}.db"
{% else %}
    database_url: DatabaseURL = f"{URL_SCHEME}://postgres:postgres@localhost:5432/{DATABASE_NAME}"
{% endif %}
    db_pool_size: int = Field(default=5, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_pool_timeout: float = Field(default=10.0, gt=0)
    db_echo: bool = False
{% if cookiecutter.database == "postgresql" %}
    # Idle for longer, a pooled connection is pinged before it is lent (see db/engine.py).
    db_ping_after: float = Field(default=10.0, ge=0)
    # Seconds before the server ends a statement, or a transaction left idle; 0: never.
    db_statement_timeout: float = Field(default=30.0, ge=0)
    db_idle_in_transaction_timeout: float = Field(default=60.0, ge=0)
    # Seconds a migration waits for a table's lock, and runs a statement, before it
    # fails and changes nothing; 0: no limit (see migrations/env.py).
    migration_lock_timeout: float = Field(default=5.0, ge=0)
    migration_statement_timeout: float = Field(default=60.0, ge=0)
{% endif %}
{% if cookiecutter.read_replicas %}
    # Hot standbys that read-only units of work read from, comma-separated URLs of
    # the same driver; empty: every unit of work on the primary (see db/replicas.py).
    database_replica_urls: DatabaseURLs = []
    # Seconds a read that must see a client's write waits for a standby to replay
    # it, before it reads from the primary instead.
    db_replica_wait: float = Field(default=0.1, ge=0)
    # A standby replaying more than this many seconds behind the primary is out of
    # rotation until it catches up; so is one that is down, or promoted.
    db_replica_max_lag: float = Field(default=30.0, gt=0)
    # Seconds between checks of each standby: its lag, and whether it is back.
    db_replica_check_interval: float = Field(default=1.0, gt=0)
{% endif %}
{% if cookiecutter.idempotency_keys %}
    # Seconds the answer to a write with an Idempotency-Key is kept (see idempotency/).
    idempotency_key_ttl: float = Field(default=24 * 60 * 60, gt=0)
{% endif %}
    # Host names answered ("*": any, "*.example.com": any below it); others get a 400.
    allowed_hosts: Annotated[list[str], NoDecode, BeforeValidator(_comma_separated)] = ["*"]
    # /docs, /redoc and /openapi.json are served (the image switches them off).
    api_docs: bool = True
{% if cookiecutter.metrics %}
    # When set, GET /metrics asks for "Authorization: Bearer <token>" (Prometheus'
    # authorization.credentials); unset, anyone who reaches the port may scrape it.
    metrics_token: Annotated[SecretStr | None, BeforeValidator(_none_if_empty)] = None
{% endif %}
    # Larger request bodies get a 413 before they are read.
    max_request_body: int = Field(default=1024 * 1024, ge=1)
{% if cookiecutter.workers %}
    # Worker processes of `python -m`, each with a pool of its own (uvicorn reads it too).
    web_concurrency: int = Field(default=1, ge=1)
{% endif %}
{% if cookiecutter.jobs %}
    # The jobs' broker (jobs/worker.py), and the prefix of the keys they use in it.
    jobs_broker_url: RedisURL = "redis://localhost:6379/0"
    jobs_namespace: str = Field(default=DATABASE_NAME, pattern=r"^[\w.:-]+$")
    # Jobs a worker process handles at once, a thread each.
    jobs_threads: int = Field(default=8, ge=1)
    # Seconds between the relay's looks for due jobs, while it finds none.
    jobs_relay_interval: float = Field(default=0.5, gt=0)
    # Tries of a job before it is dead; seconds before the second, doubled at each next.
    jobs_max_attempts: int = Field(default=5, ge=1)
    jobs_backoff: float = Field(default=10.0, ge=0)
    # Seconds a try may run before it counts as failed.
    jobs_time_limit: float = Field(default=60.0, gt=0)
    # Seconds after which a job sent and not handled is sent again (its message lost,
    # its worker killed); longer than JOBS_TIME_LIMIT.
    jobs_resend_after: float = Field(default=300.0, gt=0)
    # Seconds a handled job stays in the outbox.
    jobs_keep_handled: float = Field(default=7 * 24 * 60 * 60, gt=0)
{% if cookiecutter.metrics %}
    # The port a worker serves its metrics on (jobs/metrics.py).
    jobs_metrics_port: int = Field(default=9191, ge=1, le=65535)
{% endif %}
{% endif %}
    # Connections and requests a worker serves at once; past it, uvicorn answers 503.
    web_max_concurrency: int = Field(default=1000, ge=1)
    # Seconds an idle keep-alive connection stays open.
    web_keep_alive_timeout: float = Field(default=5.0, gt=0)
    # "text" for a terminal, "json" (one object per line) for log collectors.
    log_format: Annotated[Literal["text", "json"], BeforeValidator(str.lower)] = "text"
    log_level: Annotated[
        Literal["DEBUG", "INFO", "WARNING", "ERROR"], BeforeValidator(str.upper)
    ] = "INFO"
{% if cookiecutter.jobs %}

    @model_validator(mode="after")
    def _resend_after_a_try_is_over(self) -> Self:
        if self.jobs_resend_after <= self.jobs_time_limit:
            raise ValueError("JOBS_RESEND_AFTER must be longer than JOBS_TIME_LIMIT")
        return self
{% endif %}


def problems(error: ValidationError) -> list[str]:
    """One line per bad setting: its variable and why. Values are not repeated (they may be secrets)."""
    lines = []
    for detail in error.errors(include_url=False, include_input=False):
        name = "_".join(str(part) for part in detail["loc"]).upper() or "settings"
        lines.append(f"{name}: {detail['msg'].removeprefix('Value error, ')}")
    return lines


def unknown_variables(environ: Mapping[str, str], env_file: Path = Path(ENV_FILE)) -> list[str]:
    """Variables (in ``environ`` or ``.env``) that look like settings but are none: likely typos."""
    known = {name.upper() for name in Settings.model_fields}
    prefixes = tuple({name.split("_")[0] + "_" for name in known})
    given = set(environ)
    if env_file.is_file():
        given |= set(_ENV_FILE_NAME.findall(env_file.read_text(encoding="utf-8")))
    lines = []
    for name in sorted(given):
        if name.upper().startswith(prefixes) and name.upper() not in known:
            close = difflib.get_close_matches(name.upper(), known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            lines.append(f"{name} is not a setting of this service{hint}")
    return lines


@lru_cache
def get_settings() -> Settings:
    """The settings of this process, read once."""
    return Settings()
