"""Bad answers are refused with one clear line, and leave nothing behind."""

import importlib.util
import keyword
import sys
from pathlib import Path
from types import ModuleType

import pytest
from cookiecutter.exceptions import FailedHookException
from cookiecutter.main import cookiecutter

from .matrix import MANIFEST, TEMPLATE_DIR

BAD_NAMES = [
    ("my-service", "is not a valid Python identifier"),
    ("1service", "is not a valid Python identifier"),
    ("my service", "is not a valid Python identifier"),
    ("class", "is a Python keyword"),
    ("match", "is a Python keyword"),
    ("MyService", "has uppercase letters"),
    ("_service", "starts or ends with an underscore"),
    ("service_", "starts or ends with an underscore"),
    ("café", "has characters outside ASCII"),
    ("x" * 51, "is longer than 50 characters"),
    ("fastapi", "would shadow 'fastapi', which the generated project imports"),
    ("sqlalchemy", "would shadow 'sqlalchemy', which the generated project imports"),
    ("httpx2", "would shadow 'httpx2', which the generated project imports"),
    ("asyncpg", "would shadow 'asyncpg', which the generated project imports"),
    ("uvicorn", "would shadow 'uvicorn', which the generated project imports"),
    ("prometheus_client", "would shadow 'prometheus_client', which the generated project imports"),
    ("tests", "is the name of the generated project's own 'tests' folder"),
    ("migrations", "is the name of the generated project's own 'migrations' folder"),
    ("json", "would shadow the standard library module 'json'"),
    ("asyncio", "would shadow the standard library module 'asyncio'"),
    ("test", "would shadow the standard library module 'test'"),  # CPython's own tests
]


@pytest.fixture(scope="module")
def pre_gen_hook(rendered_hooks: Path) -> ModuleType:
    """The pre-generation hook as cookiecutter runs it, imported to ask it directly."""
    spec = importlib.util.spec_from_file_location("pre_gen", rendered_hooks / "pre_gen_project.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_standard_library_name_is_refused(pre_gen_hook: ModuleType) -> None:
    # Names the other rules would let through: all of them, not a sample.
    candidates = {
        name
        for name in sys.stdlib_module_names | {"test"}
        if name.isidentifier() and name == name.lower() and not keyword.iskeyword(name)
        if not name.startswith("_") and not name.endswith("_")
    }
    assert len(candidates) > 150

    for name in sorted(candidates):
        assert pre_gen_hook.problem(name) == f"would shadow the standard library module {name!r}"


def bake_into(output_dir: Path, **context: str) -> None:
    cookiecutter(
        str(TEMPLATE_DIR), no_input=True, extra_context=context, output_dir=str(output_dir)
    )


@pytest.mark.parametrize("field", ["project_slug", "package_name"])
@pytest.mark.parametrize(("name", "reason"), BAD_NAMES, ids=[n for n, _ in BAD_NAMES])
def test_bad_name_is_refused(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], field: str, name: str, reason: str
) -> None:
    # A valid slug where only the package name is under test.
    with pytest.raises(FailedHookException):
        bake_into(tmp_path, **{"project_slug": "service_x", field: name})

    error_lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith("ERROR")]
    assert len(error_lines) == 1
    assert error_lines[0].startswith(f"ERROR: {field} {name!r} {reason}")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("field", ["project_name", "description", "author_name", "author_email"])
def test_text_that_would_break_string_literals_is_refused(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], field: str
) -> None:
    with pytest.raises(FailedHookException):
        bake_into(tmp_path, **{field: 'The "best" service'})

    assert f"ERROR: {field} 'The \"best\" service' may not contain" in capfd.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("field", "limit"),
    [("project_name", 100), ("description", 300), ("author_name", 100), ("author_email", 100)],
)
def test_text_that_is_too_long_is_refused(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], field: str, limit: int
) -> None:
    with pytest.raises(FailedHookException):
        bake_into(tmp_path, project_slug="service_x", **{field: "x" * (limit + 1)})

    assert f"ERROR: {field} {'x' * (limit + 1)!r} is longer than {limit} characters." in (
        capfd.readouterr().err
    )
    assert list(tmp_path.iterdir()) == []


def test_a_good_name_is_accepted(tmp_path: Path) -> None:
    bake_into(tmp_path, project_slug="inventory", package_name="inventory_api")

    assert [p.name for p in tmp_path.iterdir()] == ["inventory"]


@pytest.mark.parametrize("wing", sorted(MANIFEST["postgresql_only"]))
def test_a_postgresql_only_wing_with_sqlite_is_refused(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], wing: str
) -> None:
    with pytest.raises(FailedHookException):
        bake_into(tmp_path, database="sqlite", **{wing: "yes"})

    error_lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith("ERROR")]
    assert error_lines == [
        f"ERROR: {wing} needs database postgresql: {MANIFEST['postgresql_only'][wing]}."
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("axis", "value"),
    [
        ("database", "mysql"),
        ("driver", "threads"),
        ("session_strategy", "global"),
        ("python_version", "3.9"),
    ],
)
def test_unknown_choice_is_refused(tmp_path: Path, axis: str, value: str) -> None:
    with pytest.raises(
        ValueError, match=rf"{value} provided for choice variable {axis}, but the choices are"
    ):
        bake_into(tmp_path, **{axis: value})

    assert list(tmp_path.iterdir()) == []
