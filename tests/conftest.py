"""Shared fixtures: baking, the PostgreSQL server, and a report of what the matrix measured."""

import os
import shutil
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
import psycopg
import pytest
from cookiecutter.generate import generate_context
from cookiecutter.prompt import prompt_for_config
from cookiecutter.utils import create_env_with_context
from psycopg import sql
from pytest_cookies.plugin import Cookies

from .matrix import TEMPLATE_DIR

# The command-line tools installed next to the interpreter that runs the tests.
COOKIECUTTER_CLI = str(Path(sys.executable).with_name("cookiecutter"))
CRUFT_CLI = str(Path(sys.executable).with_name("cruft"))

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


# cookiecutter makes a new Jinja environment for every bake, so every bake parses and
# compiles each of the template's ~90 files again: two thirds of a bake's time. These
# tests bake over a thousand times in one process, so each file is compiled once
# (Jinja's code objects take their environment at render time, not compile time); the
# key holds every setting of the environment the compiler reads.
_JINJA_COMPILE: Callable[..., Any] = jinja2.Environment.compile
_COMPILED: dict[tuple[Any, ...], Any] = {}


def _compile_once(
    self: jinja2.Environment,
    source: Any,
    name: str | None = None,
    filename: str | None = None,
    raw: bool = False,
    defer_init: bool = False,
) -> Any:
    if not isinstance(source, str):
        return _JINJA_COMPILE(self, source, name, filename, raw, defer_init)
    key = (
        source,
        name,
        filename,
        raw,
        defer_init,
        type(self),
        self.block_start_string,
        self.block_end_string,
        self.variable_start_string,
        self.variable_end_string,
        self.comment_start_string,
        self.comment_end_string,
        self.line_statement_prefix,
        self.line_comment_prefix,
        self.trim_blocks,
        self.lstrip_blocks,
        self.newline_sequence,
        self.keep_trailing_newline,
        self.optimized,
        self.finalize,
        self.autoescape,
        frozenset(self.extensions),
        frozenset(self.filters),
        frozenset(self.tests),
    )
    if key not in _COMPILED:
        _COMPILED[key] = _JINJA_COMPILE(self, source, name, filename, raw, defer_init)
    return _COMPILED[key]


jinja2.Environment.compile = _compile_once  # type: ignore[method-assign]


@pytest.fixture
def uncompiled_bakes() -> Iterator[None]:
    """Bakes as a user's are, every file compiled anew (for timing them)."""
    jinja2.Environment.compile = _JINJA_COMPILE  # type: ignore[method-assign]
    try:
        yield
    finally:
        jinja2.Environment.compile = _compile_once  # type: ignore[method-assign]


GIT_USER = ["-c", "user.name=Template Tests", "-c", "user.email=tests@example.com"]


def git(*args: str, cwd: Path) -> str:
    result = subprocess.run(
        ["git", *GIT_USER, *args], cwd=cwd, capture_output=True, text=True, check=True
    )
    return result.stdout


@pytest.fixture
def template_repo(tmp_path: Path) -> Path:
    """A git repository holding the template as it is on disk now (committed or not)."""
    files = git("ls-files", "--cached", "--others", "--exclude-standard", cwd=TEMPLATE_DIR)
    repo = tmp_path / "template"
    for name in files.splitlines():
        if (TEMPLATE_DIR / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(TEMPLATE_DIR / name, repo / name)
    git("init", "--quiet", cwd=repo)
    git("add", "--all", cwd=repo)
    git("commit", "--quiet", "-m", "template", cwd=repo)
    return repo


@pytest.fixture(scope="session")
def rendered_hooks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hooks as cookiecutter runs them: rendered with the default answers."""
    context = generate_context(context_file=str(TEMPLATE_DIR / "cookiecutter.json"))
    answers = prompt_for_config(context, no_input=True)
    env = create_env_with_context({"cookiecutter": answers})
    out = tmp_path_factory.mktemp("hooks")
    for hook in sorted((TEMPLATE_DIR / "hooks").glob("*.py")):
        (out / hook.name).write_text(env.from_string(hook.read_text()).render(cookiecutter=answers))
    return out


def bake(cookies: Cookies, **context: Any) -> Path:
    """Bake with ``context``, insisting that it worked (pytest-cookies swallows errors)."""
    result = cookies.bake(extra_context=context)
    assert result.exception is None, result.exception
    assert result.exit_code == 0
    assert result.project_path is not None
    return Path(result.project_path)


class Postgres:
    """The server the PostgreSQL variants run against: one throwaway database each."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _run(self, statement: sql.Composed) -> None:
        with psycopg.connect(self.url, autocommit=True) as connection:
            connection.execute(statement)

    def create_database(self, name: str) -> None:
        self.drop_database(name)
        self._run(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def drop_database(self, name: str) -> None:
        self._run(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def database_exists(self, name: str) -> bool:
        with psycopg.connect(self.url) as connection:
            row = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [name]
            ).fetchone()
            return row is not None

    def sqlalchemy_url(self, name: str, driver: str) -> str:
        """The URL of database ``name`` on this server, for SQLAlchemy with ``driver``."""
        return urlsplit(self.url)._replace(scheme=f"postgresql+{driver}", path=f"/{name}").geturl()


@pytest.fixture(scope="session")
def postgres() -> Postgres:
    """The server at TEST_POSTGRES_URL; unreachable means skip, or fail when CI is set."""
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=5):
            pass
    except psycopg.OperationalError as error:
        reason = f"PostgreSQL at TEST_POSTGRES_URL={POSTGRES_URL} is unreachable: {error}".strip()
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set, so the PostgreSQL variants must run)")
        pytest.skip(f"SKIPPING POSTGRESQL VARIANTS: {reason}")
    return Postgres(POSTGRES_URL)


# What the matrix measured, gathered from every worker's reports: printed at the end.
_measured: dict[str, dict[str, Any]] = defaultdict(dict)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for key, value in report.user_properties:
        if isinstance(key, str) and key.startswith("matrix:"):
            variant, _, measure = key.removeprefix("matrix:").partition(":")
            _measured[variant][measure] = value


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _measured:
        return
    columns = [
        "bake_s",
        "install_s",
        "lint_s",
        "mypy_s",
        "resource_s",
        "suite_s",
        "suite_n2_s",
        "suite_passed",
        "alone_s",
    ]
    terminalreporter.section("matrix: seconds per step, and the generated suite's test count")
    terminalreporter.write_line(f"{'variant':<44}" + "".join(f"{c:>13}" for c in columns))
    for variant in sorted(_measured):
        cells = "".join(f"{_measured[variant].get(c, '-')!s:>13}" for c in columns)
        terminalreporter.write_line(f"{variant:<44}{cells}")
    for variant in sorted(_measured):
        for measure, value in _measured[variant].items():
            if measure not in columns:
                terminalreporter.write_line(f"{variant}: {measure}: {value}")
