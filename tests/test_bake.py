"""Baking every variant: what lands on disk, and nothing else."""

import ast
import re
import statistics
import time
from pathlib import Path

import pytest
from pytest_cookies.plugin import Cookies

from .conftest import bake
from .declared_imports import CODE_FOLDERS, third_party_imports
from .matrix import (
    AXES,
    COOKIECUTTER,
    DRIVER_PACKAGES,
    MANIFEST,
    PROJECT_TEMPLATE,
    TEMPLATE_DIR,
    VARIANTS,
    Variant,
    alternative_sources,
    expected_files,
)

# Jinja that survived rendering; GitHub Actions' ${{ }} is legitimate.
LEFTOVER = re.compile(r"(?<!\$)\{\{|\{%|\{#|cookiecutter\.")
# What a person is asked: every key but the private ones.
PROMPTS = {key: value for key, value in COOKIECUTTER.items() if not key.startswith("_")}
# The answers of a bake that is given no context: every choice's first option.
DEFAULTS = {
    "project_slug": "my_service",
    "package_name": "my_service",
    **{key: value[0] for key, value in PROMPTS.items() if isinstance(value, list)},
}


def files_of(project: Path) -> set[str]:
    return {p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file()}


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.id)
def test_bake_produces_exactly_the_manifest(cookies: Cookies, variant: Variant) -> None:
    project = bake(cookies, **variant.context)

    assert project.name == "my_service"
    assert files_of(project) == expected_files({**DEFAULTS, **variant.context})


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.id)
def test_no_template_syntax_survives(cookies: Cookies, variant: Variant) -> None:
    project = bake(cookies, **variant.context)

    for path in project.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert not LEFTOVER.search(text), (
                f"{path.relative_to(project)}: {LEFTOVER.search(text)}"
            )
            assert "\n\n\n\n" not in text, f"{path.relative_to(project)} has a blank-line scar"
            assert "BaseHTTPMiddleware(" not in text
            assert not re.search(r"^from starlette.middleware.base", text, re.M)


def test_every_alternative_exists_in_the_template() -> None:
    present = {
        p.relative_to(PROJECT_TEMPLATE).as_posix()
        for p in PROJECT_TEMPLATE.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    missing = alternative_sources() - present
    assert not missing, f"the manifest names alternatives the template lacks: {sorted(missing)}"
    axes = {axis for axes in MANIFEST["alternatives"].values() for axis in axes}
    assert axes <= {key for key, value in PROMPTS.items() if isinstance(value, list)}


@pytest.mark.parametrize(("database", "driver"), [(v.database, v.driver) for v in VARIANTS[::2]])
def test_routes_and_repository_are_the_same_text_in_both_strategies(
    cookies: Cookies, database: str, driver: str
) -> None:
    projects = {
        strategy: bake(cookies, database=database, driver=driver, session_strategy=strategy)
        for strategy in COOKIECUTTER["session_strategy"]
    }
    package = Path("src/my_service")
    modules = ["items/routes.py", "items/repository.py", "items/models.py", "items/schemas.py"]
    for module in [*modules, "http.py", "db/unit.py"]:
        texts = {(p / package / module).read_text() for p in projects.values()}
        assert len(texts) == 1, f"{module} differs between strategies"


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.id)
def test_variant_specific_code_is_where_it_belongs(cookies: Cookies, variant: Variant) -> None:
    project = bake(cookies, **variant.context)
    src = project / "src/my_service"
    session = (src / "session.py").read_text()
    unit = (src / "db/unit.py").read_text()
    main = (src / "main.py").read_text()
    routes = (src / "items/routes.py").read_text()
    pyproject = (project / "pyproject.toml").read_text()

    # The schema is the migrations' job: the service never creates tables itself.
    assert not [f for f in src.rglob("*.py") if "create_all" in f.read_text()]
    if variant.session_strategy == "middleware":
        assert "class SessionMiddleware" in session
        assert "Middleware(SessionMiddleware)" in main
    else:
        assert 'Depends(_session(None), scope="function")' in session
        assert "SessionMiddleware" not in main
    if variant.driver == "async":
        assert "async def create_item" in routes
        assert "AsyncSession" in unit
        assert '"sqlalchemy[asyncio]' in pyproject
    else:
        assert "async def" not in routes
        assert "await" not in routes
        assert "to_thread.run_sync" in unit
        assert "sqlalchemy[asyncio]" not in pyproject
    declared = {d for d in DRIVER_PACKAGES if re.search(rf'^\s*"{d}[\[>=]', pyproject, re.M)}
    assert declared == variant.driver_packages


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.id)
def test_storage_imports_nothing_of_the_http_layer(cookies: Cookies, variant: Variant) -> None:
    """The database layer, and each resource's models, schemas and repository, work
    without FastAPI: background jobs and scripts use them as they are."""
    src = bake(cookies, **variant.context) / "src/my_service"
    http = {"fastapi", "starlette", "asgi_correlation_id"} | {
        f"my_service.{name}"
        for name in ("errors", "http", "session", "main", "observability", "health")
    }
    storage = [*src.glob("db/*.py"), *src.glob("*/models.py"), *src.glob("*/repository.py")]
    storage += src.glob("*/schemas.py")
    assert len(storage) > len(list(src.glob("db/*.py")))

    for module in storage:
        package = module.relative_to(src).parent.parts
        imported = set()
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = ["my_service", *package][: len(package) + 2 - node.level]
                name = ".".join([*base, node.module] if node.module else base)
                imported.add(name if node.level else node.module or "")
        reached = {name for name in imported if name.split(".")[0] in http or name in http}
        assert not reached, f"{module.relative_to(src)} imports {reached}"


def test_reserved_names_are_what_the_projects_import(cookies: Cookies) -> None:
    """The pre-generation hook refuses these names: they must be exactly what the code imports."""
    imported: set[str] = set()
    for variant in VARIANTS:
        project = bake(cookies, **variant.context)
        imported |= third_party_imports(project, *CODE_FOLDERS)

    assert sorted(imported) == MANIFEST["imports"]
    assert set(MANIFEST["loads"]) >= DRIVER_PACKAGES


def test_the_manifest_choices_are_the_prompts_choices() -> None:
    for axis, choices in MANIFEST["choices"].items():
        assert choices == COOKIECUTTER[axis]
    axes = {axis for axes in MANIFEST["alternatives"].values() for axis in axes}
    assert axes | {axis for answers in MANIFEST["only"].values() for axis in answers} <= set(
        MANIFEST["choices"]
    )


def test_one_bake_takes_under_a_second(cookies: Cookies) -> None:
    durations = []
    for variant in VARIANTS:
        started = time.perf_counter()
        bake(cookies, **variant.context)
        durations.append(time.perf_counter() - started)

    assert statistics.median(durations) < 1.0, durations
    assert max(durations) < 2.0, durations


def test_names_are_derived_from_the_project_name(cookies: Cookies) -> None:
    project = bake(cookies, project_name="Order Tracking API!")

    assert project.name == "order_tracking_api"
    assert (project / "src/order_tracking_api/main.py").is_file()
    assert 'title="Order Tracking API!"' in (project / "src/order_tracking_api/main.py").read_text()


def test_package_name_can_differ_from_the_slug(cookies: Cookies) -> None:
    project = bake(cookies, project_slug="orders_service", package_name="orders")

    assert project.name == "orders_service"
    assert files_of(project) == expected_files(
        {**DEFAULTS, "project_slug": "orders_service", "package_name": "orders"}
    )
    assert "python -m orders --reload" in (project / "README.md").read_text()


@pytest.mark.parametrize("python_version", COOKIECUTTER["python_version"])
def test_python_version_reaches_every_tool(cookies: Cookies, python_version: str) -> None:
    project = bake(cookies, python_version=python_version)
    pyproject = (project / "pyproject.toml").read_text()

    assert f'requires-python = ">={python_version}"' in pyproject
    assert f'target-version = "py{python_version.replace(".", "")}"' in pyproject
    assert f'python_version = "{python_version}"' in pyproject
    # uv and pyenv pick an installed interpreter of that version, not a download.
    assert (project / ".python-version").read_text() == f"{python_version}\n"


def test_no_answers_bake_the_documented_default_variant(cookies: Cookies) -> None:
    """The template README's prompt table names the defaults; a bake without answers has them."""
    readme = (TEMPLATE_DIR / "README.md").read_text()
    documented = {
        axis: re.search(rf"^\| `{axis}` \| (\S+) \|", readme, re.M) for axis in (*AXES, "license")
    }
    defaults = {axis: match.group(1) for axis, match in documented.items() if match}
    assert set(defaults) == set(documented)

    plain = bake(cookies)
    explicit = bake(cookies, **defaults)

    assert files_of(plain) == files_of(explicit)
    for name in files_of(plain):
        assert (plain / name).read_bytes() == (explicit / name).read_bytes(), name
    assert "create_async_engine" in (plain / "src/my_service/db/engine.py").read_text()
    assert "sqlite" in (plain / "src/my_service/db/engine.py").read_text()


def test_every_prompt_has_a_readable_question() -> None:
    prompts = COOKIECUTTER["__prompts__"]
    assert sorted(prompts) == sorted(PROMPTS)
    for key, value in PROMPTS.items():
        if isinstance(value, list):
            labels = prompts[key]
            assert labels["__prompt__"].strip()
            assert sorted(k for k in labels if k != "__prompt__") == sorted(value)
