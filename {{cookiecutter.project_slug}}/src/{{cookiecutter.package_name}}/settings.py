"""Settings, read from the environment and from a ``.env`` file."""

from functools import lru_cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The name of the database the service uses by default.
DATABASE_NAME = "{{ cookiecutter.project_slug }}"


class Settings(BaseSettings):
    """Every setting can be given as an environment variable of the same name, upper-cased."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

{% if cookiecutter.database == "sqlite" %}
    database_url: str = f"sqlite+{{ 'aiosqlite' if cookiecutter.driver == 'async' else 'pysqlite' }}:///./{DATABASE_NAME}.db"
{% else %}
    database_url: str = f"postgresql+{{ 'asyncpg' if cookiecutter.driver == 'async' else 'psycopg' }}://postgres:postgres@localhost:5432/{DATABASE_NAME}"
{% endif %}
    db_pool_size: int = Field(default=5, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_pool_timeout: float = Field(default=10.0, gt=0)
    db_echo: bool = False
{% if cookiecutter.database == "postgresql" %}
    # The database URL points at PgBouncer in transaction mode: no server-side
    # prepared statements outlive a transaction (see db/engine.py).
    db_pgbouncer: bool = False
    # A pooled connection idle for longer is pinged before it is lent again;
    # one idle for less is checked without a round trip (see db/engine.py).
    db_ping_after: float = Field(default=10.0, ge=0)
{% endif %}
    # Larger request bodies are refused with a 413 before they are parsed.
    max_request_body: int = Field(default=1024 * 1024, ge=1)
    # Worker processes of `python -m {{ cookiecutter.package_name }}` (uvicorn reads the same
    # variable). Each opens up to db_pool_size + db_max_overflow connections.
    web_concurrency: int = Field(default=1, ge=1)
    # "text" reads well in a terminal; "json" (one object per line) suits log collectors.
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


@lru_cache
def get_settings() -> Settings:
    """The settings of this process, read once."""
    return Settings()
