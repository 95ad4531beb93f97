"""Settings are checked before the service starts, and a service that cannot start says why."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from {{ cookiecutter.package_name }}.__main__ import PROG
from {{ cookiecutter.package_name }}.settings import (
    URL_SCHEME,
    Settings,
    problems,
    unknown_variables,
)

from .support import free_port


def bad_settings(**values: object) -> list[str]:
    with pytest.raises(ValidationError) as error:
        Settings(_env_file=None, **values)  # type: ignore[arg-type]
    return problems(error.value)


def serve(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The service's command in an empty folder, with ``env``; it must end by itself."""
    return subprocess.run(
        [sys.executable, "-m", PROG.split()[-1], "--port", str(free_port()), *args],
        cwd=tmp_path,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("given", ["debug", "Debug", "DEBUG"])
def test_log_levels_are_read_in_any_case(given: str) -> None:
    assert Settings(_env_file=None, log_level=given).log_level == "DEBUG"  # type: ignore[arg-type]


def test_log_formats_are_read_in_any_case() -> None:
    assert Settings(_env_file=None, log_format="JSON").log_format == "json"  # type: ignore[arg-type]


{% if cookiecutter.database == "sqlite" %}
OTHER_DRIVERS = ["postgresql+asyncpg://db/app", "sqlite+{{ 'pysqlite' if cookiecutter.driver == 'async' else 'aiosqlite' }}:///app.db"]
{% else %}
OTHER_DRIVERS = ["sqlite:///app.db", "postgresql+{{ 'psycopg' if cookiecutter.driver == 'async' else 'asyncpg' }}://db/app"]
{% endif %}


def test_a_database_url_that_is_none_is_refused() -> None:
    assert bad_settings(database_url="garbage") == [
        f"DATABASE_URL: is not a database URL; expected {URL_SCHEME}://..."
    ]


@pytest.mark.parametrize("url", OTHER_DRIVERS)
def test_a_database_url_for_another_driver_is_refused(url: str) -> None:
    named = url.partition(":")[0]

    assert bad_settings(database_url=url) == [
        f"DATABASE_URL: names {named!r}; this service runs on {URL_SCHEME}://..."
    ]


def test_every_bad_setting_is_named_without_its_value() -> None:
    lines = bad_settings(db_pool_size="many", log_level="loud")

    assert [line.partition(":")[0] for line in lines] == ["DB_POOL_SIZE", "LOG_LEVEL"]
    assert not any("many" in line or "loud" in line for line in lines)


def test_a_misspelt_setting_is_reported_with_the_likely_one(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("export LOG_LEVL=DEBUG\nOTHER_TOOL=1\n")

    found = unknown_variables({"DB_POOLSIZE": "3", "HOME": "/root", "DB_POOL_SIZE": "3"}, env_file)

    assert found == [
        "DB_POOLSIZE is not a setting of this service (did you mean DB_POOL_SIZE?)",
        "LOG_LEVL is not a setting of this service (did you mean LOG_LEVEL?)",
    ]


def test_a_bad_setting_stops_the_service_with_one_line(tmp_path: Path) -> None:
    result = serve(tmp_path, DATABASE_URL="garbage", DB_POOLSIZE="3")

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"{PROG}: warning: DB_POOLSIZE is not a setting of this service (did you mean DB_POOL_SIZE?)",
        f"{PROG}: cannot start: DATABASE_URL: is not a database URL; expected {URL_SCHEME}://...",
    ]


def test_a_service_that_cannot_start_exits_with_status_3(tmp_path: Path, database_url: str) -> None:
    # The server's process imports this first: the application's startup fails.
    (tmp_path / "sitecustomize.py").write_text(
        "from {{ cookiecutter.package_name }}.db import unit\n\n\n"
        "def refuse(*args, **kwargs):\n"
        "    raise RuntimeError('no database today')\n\n\n"
        "unit.Database.__init__ = refuse\n"
    )

    result = serve(tmp_path, DATABASE_URL=database_url, PYTHONPATH=str(tmp_path))

    assert result.returncode == 3, result.stderr
    assert "no database today" in result.stderr
