"""Baking every variant: what lands on disk, and nothing else."""

import ast
import os
import re
import statistics
from pathlib import Path

import pytest
from pytest_cookies.plugin import Cookies

from . import sizes
from .conftest import bake
from .declared_imports import CODE_FOLDERS, third_party_imports
from .matrix import (
    AXES,
    COOKIECUTTER,
    DEFAULT_ANSWERS,
    DRIVER_PACKAGES,
    MANIFEST,
    PROJECT_TEMPLATE,
    TEMPLATE_DIR,
    VARIANTS,
    WINGS,
    Variant,
    alternative_sources,
    expected_files,
)
from .readme import table_in_readme

# What a person is asked: every key but the private ones.
PROMPTS = {key: value for key, value in COOKIECUTTER.items() if not key.startswith("_")}
# The modules every bake has, whatever its wings: the core. Their text must not depend
# on the wings chosen (the wings join at main.py, settings.py and __main__.py).
CORE_MODULES = [
    "db/base.py",
    "db/engine.py",
    "db/errors.py",
    "db/inserts.py",
    "db/models.py",
    "db/types.py",
    "db/unit.py",
    "errors.py",
    "fields.py",
    "health.py",
    "http.py",
    "items/models.py",
    "items/repository.py",
    "items/routes.py",
    "items/schemas.py",
    "items/tasks.py",
    "logs.py",
    "observability.py",
    "paging.py",
    "session.py",
]
# What a reader of db/unit.py in a bake without wings meets no word of.
WING_WORDS = re.compile(
    r"standby|replica|idempoten|\bkeys?\b|keyed|metric|prometheus|pgbouncer", re.I
)


def files_of(project: Path) -> set[str]:
    return {p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file()}


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
    http = {"fastapi", "starlette"} | {
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
        project = bake(cookies, **variant.with_wings(variant.possible_wings).context)
        imported |= third_party_imports(project, *CODE_FOLDERS)

    assert sorted(imported) == MANIFEST["imports"]
    assert set(MANIFEST["loads"]) >= DRIVER_PACKAGES


REVISION = re.compile(r'^revision: str = "(\w+)"\ndown_revision: str \| None = "?(\w+)"?$', re.M)


def revisions(project: Path) -> dict[str, str | None]:
    """Each migration's revision and the one it revises (None for the first)."""
    chain: dict[str, str | None] = {}
    for script in (project / "migrations/versions").glob("*.py"):
        ((revision, down),) = REVISION.findall(script.read_text())
        chain[revision] = None if down == "None" else down
    return chain


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.id)
def test_the_core_is_the_same_text_whatever_the_wings(cookies: Cookies, variant: Variant) -> None:
    """Core modules name no wing: a bake with every wing has them exactly as one with none,
    and in the one with none they say no word of a wing."""
    bare = bake(cookies, **variant.context) / "src/my_service"
    winged = bake(cookies, **variant.with_wings(variant.possible_wings).context) / "src/my_service"

    for module in CORE_MODULES:
        assert (bare / module).read_text() == (winged / module).read_text(), module
    assert not WING_WORDS.search((bare / "db/unit.py").read_text())
    # A wing's migrations come after the core's and change none of them: a project that
    # takes a wing later (cruft update) gets its tables from `alembic upgrade head`.
    core_chain = revisions(bare.parent.parent)
    every_chain = revisions(winged.parent.parent)
    assert {revision: every_chain[revision] for revision in core_chain} == core_chain
    (core_head,) = set(core_chain) - set(core_chain.values())
    added = {r: down for r, down in every_chain.items() if r not in core_chain}
    assert added, "idempotency_keys brings a migration"
    assert set(added.values()) <= {core_head, *added}
    core = {p.relative_to(bare).as_posix() for p in bare.rglob("*.py")}
    # A bake without wings has the core, and the seams where wings join: nothing else.
    seams = {"__init__.py", "__main__.py", "main.py", "settings.py", "db/__init__.py"}
    assert core == set(CORE_MODULES) | seams | {"items/__init__.py"}


def test_the_wings_are_the_yes_no_prompts_and_postgresql_only_ones_are_named() -> None:
    assert WINGS == (
        "metrics",
        "idempotency_keys",
        "reverse_proxy",
        "pgbouncer",
        "read_replicas",
        "workers",
        "jobs",
        "tracing",
    )
    assert all(COOKIECUTTER[wing] is False for wing in WINGS)  # off unless chosen
    assert set(MANIFEST["postgresql_only"]) == {"pgbouncer", "read_replicas"}
    assert set(MANIFEST["wing_packages"]) <= set(WINGS)
    conditions = {prompt for answers in MANIFEST["only"].values() for prompt in answers}
    assert set(WINGS) <= conditions  # every wing has files of its own


def test_the_manifest_choices_are_the_prompts_choices() -> None:
    for axis, choices in MANIFEST["choices"].items():
        assert choices == COOKIECUTTER[axis]
    axes = {axis for axes in MANIFEST["alternatives"].values() for axis in axes}
    assert axes <= set(MANIFEST["choices"])
    conditions = {prompt for answers in MANIFEST["only"].values() for prompt in answers}
    assert conditions <= set(MANIFEST["choices"]) | set(WINGS)


def cpu_seconds() -> float:
    """The CPU time of this process and of the children it waited for (the hooks)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


@pytest.mark.usefixtures("uncompiled_bakes")
def test_one_bake_takes_under_a_second(cookies: Cookies) -> None:
    """Counted in CPU time, which the matrix's other worker does not stretch as it does
    the clock (a bake is about 0.35 s of CPU on the 2-core machine)."""
    durations = []
    for variant in VARIANTS:
        started = cpu_seconds()
        bake(cookies, **variant.context)
        durations.append(cpu_seconds() - started)

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
        {**DEFAULT_ANSWERS, "project_slug": "orders_service", "package_name": "orders"}
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
    explicit = bake(cookies, **defaults, **dict.fromkeys(WINGS, False))

    assert files_of(plain) == files_of(explicit)
    for name in files_of(plain):
        assert (plain / name).read_bytes() == (explicit / name).read_bytes(), name
    assert "create_async_engine" in (plain / "src/my_service/db/engine.py").read_text()
    assert "sqlite" in (plain / "src/my_service/db/engine.py").read_text()


# The README's "Add a resource": a file it names, then its code.
README_FILE = re.compile(r"^File `([^`]+)`:\n\n```python\n(.*?)^```$", re.M | re.S)
NUMBERS = dict(
    enumerate(
        [
            "no",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
        ]
    )
)


def test_a_new_resource_takes_at_most_thirteen_names_of_the_project(cookies: Cookies) -> None:
    """What the walkthrough's resource imports from the rest of the project (``..`` in
    its modules), counted: no more than thirteen (twelve, and the item's schema that a
    note's answer nests), as many as the README says."""
    readme = (bake(cookies) / "README.md").read_text()
    section = readme[readme.index("## Add a resource") : readme.index("## The API")]
    taken = set()
    for name, code in README_FILE.findall(section):
        if name.startswith("src/"):
            for node in ast.walk(ast.parse(code)):
                if isinstance(node, ast.ImportFrom) and node.level == 2:
                    taken |= {f"{node.module}.{alias.name}" for alias in node.names}

    assert len(taken) <= 13, sorted(taken)
    assert f"It takes {NUMBERS[len(taken)]} names from the rest of the project." in " ".join(
        section.split()
    )


def test_every_prompt_has_a_readable_question() -> None:
    prompts = COOKIECUTTER["__prompts__"]
    assert sorted(prompts) == sorted(PROMPTS)
    for key, value in PROMPTS.items():
        if isinstance(value, list):
            labels = prompts[key]
            assert labels["__prompt__"].strip()
            assert sorted(k for k in labels if k != "__prompt__") == sorted(value)


def test_the_readme_gives_the_sizes_of_the_bakes_as_they_are(tmp_path: Path) -> None:
    """After a change to the template, ``python3 tasks.py sizes`` writes the table anew."""
    assert sizes.table(tmp_path) == table_in_readme("sizes")


def test_the_core_of_the_default_postgresql_bake_is_at_most_its_aim(tmp_path: Path) -> None:
    variant_id, most = sizes.AIM
    (variant,) = [variant for variant in VARIANTS if variant.id == variant_id]
    assert sizes.sizes(variant, tmp_path)["src"] <= most
