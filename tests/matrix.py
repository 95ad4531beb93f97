"""The combinations table and the file manifest, both read from cookiecutter.json.

The post-generation hook reads the same ``_manifest``; nothing here restates it.
"""

import itertools
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

TEMPLATE_DIR = Path(__file__).resolve().parents[1]
PROJECT_TEMPLATE = TEMPLATE_DIR / "{{cookiecutter.project_slug}}"
COOKIECUTTER: dict[str, Any] = json.loads((TEMPLATE_DIR / "cookiecutter.json").read_text())
MANIFEST: dict[str, Any] = COOKIECUTTER["_manifest"]
AXES = ("database", "driver", "session_strategy")
# The wings: the yes/no prompts, in the order they are asked.
WINGS = tuple(key for key, value in COOKIECUTTER.items() if isinstance(value, bool))
POSTGRESQL_ONLY = frozenset(MANIFEST["postgresql_only"])


@dataclass(frozen=True)
class Variant:
    """A combination of the three axes, and the wings chosen with it."""

    database: str
    driver: str
    session_strategy: str
    wings: frozenset[str] = frozenset()

    @property
    def base_id(self) -> str:
        return f"{self.database}-{self.driver}-{self.session_strategy}"

    @property
    def id(self) -> str:
        if not self.wings:
            return self.base_id
        if self.wings == frozenset(self.possible_wings):
            return f"{self.base_id}+every-wing"
        return "+".join([self.base_id, *(wing for wing in WINGS if wing in self.wings)])

    @property
    def possible_wings(self) -> tuple[str, ...]:
        """The wings this variant's database can have."""
        return tuple(w for w in WINGS if self.database == "postgresql" or w not in POSTGRESQL_ONLY)

    def with_wings(self, wings: Iterable[str]) -> "Variant":
        return replace(self, wings=frozenset(wings))

    @property
    def context(self) -> dict[str, Any]:
        axes: dict[str, Any] = {axis: getattr(self, axis) for axis in AXES}
        return {**axes, **{wing: wing in self.wings for wing in WINGS}}

    @property
    def sqlalchemy_driver(self) -> str:
        """The driver part of the variant's SQLAlchemy URL (``sqlite+<driver>://``)."""
        return DRIVERS[(self.database, self.driver)][0]

    @property
    def driver_packages(self) -> set[str]:
        """The database driver distributions this variant must depend on (none: stdlib sqlite3)."""
        return DRIVERS[(self.database, self.driver)][1]


# (database, driver) -> (SQLAlchemy's driver name, the distributions that provide it)
DRIVERS: dict[tuple[str, str], tuple[str, set[str]]] = {
    ("postgresql", "async"): ("asyncpg", {"asyncpg"}),
    ("postgresql", "sync"): ("psycopg", {"psycopg"}),
    ("sqlite", "async"): ("aiosqlite", {"aiosqlite"}),
    ("sqlite", "sync"): ("pysqlite", set()),
}
# Every driver distribution any variant may depend on.
DRIVER_PACKAGES = set().union(*(packages for _, packages in DRIVERS.values()))


# The answers of a bake that is given none: the default of every prompt.
DEFAULT_ANSWERS: dict[str, Any] = {
    "project_slug": "my_service",
    "package_name": "my_service",
    **{
        key: value[0] if isinstance(value, list) else value
        for key, value in COOKIECUTTER.items()
        if not key.startswith("_") and isinstance(value, list | bool)
    },
}
VARIANTS = [Variant(*combo) for combo in itertools.product(*(COOKIECUTTER[axis] for axis in AXES))]
# Every supported combination of a variant and its wings.
COMBINATIONS = [
    variant.with_wings(chosen)
    for variant in VARIANTS
    for size in range(len(variant.possible_wings) + 1)
    for chosen in itertools.combinations(variant.possible_wings, size)
]
# Where each wing is checked alone (type-checked, its own tests run): one variant of
# each driver, spread over the variants so that each matrix job takes about as many;
# the jobs wing, whose handlers differ by driver and database, and the tracing wing,
# whose spans follow a unit of work into each driver's threads or greenlets, in every
# variant.
EVERY_VARIANT = tuple(
    "-".join(combo) for combo in itertools.product(*(COOKIECUTTER[axis] for axis in AXES))
)
ALONE: dict[str, tuple[str, ...]] = {
    "metrics": ("sqlite-async-dependency", "sqlite-sync-middleware"),
    "idempotency_keys": ("sqlite-async-middleware", "sqlite-sync-dependency"),
    "reverse_proxy": ("postgresql-async-middleware", "postgresql-sync-dependency"),
    "pgbouncer": ("postgresql-async-dependency", "postgresql-sync-middleware"),
    "read_replicas": ("postgresql-async-middleware", "postgresql-sync-dependency"),
    "workers": ("postgresql-async-dependency", "postgresql-sync-middleware"),
    "jobs": EVERY_VARIANT,
    "tracing": EVERY_VARIANT,
}

# The longest names and texts the pre-generation hook accepts.
LONGEST_SLUG = "very_long_" * 4 + "name_of_it"  # 50 characters
LONGEST_PACKAGE = "pkg_" + "very_long_" * 4 + "name_o"  # 50 characters
# Every other answer the prompts accept, spread over the variants, so that the
# matrix bakes, checks and tests each of them once (each python_version under
# its own interpreter).
ANSWER_SETS: list[dict[str, str]] = [
    {},  # the defaults: Python 3.11, MIT
    {
        "project_name": "Ærøskøbing Fähre — Überfahrten & Fahrpläne",
        "description": "Fährverbindungen über die Ostsee: schnell, günstig, pünktlich — „immer“.",
        "author_name": "Zoë Ødegård-Łukasiewicz",
        "python_version": "3.12",
        "license": "Apache-2.0",
    },
    {
        "project_name": "Fleet Tracking " * 6 + "Management",  # 100 characters
        "project_slug": LONGEST_SLUG,
        "package_name": LONGEST_PACKAGE,
        "description": "Tracks every vehicle of a fleet. " * 9 + "End",  # 300 characters
        "author_name": "Ada Lovelace " * 7 + "Byron-Kin",  # 100 characters
        "python_version": "3.13",
        "license": "Proprietary",
    },
]


def answers(variant: Variant) -> dict[str, str]:
    """The variant's prompts answered, beyond its axes and wings (see ANSWER_SETS)."""
    return ANSWER_SETS[VARIANTS.index(variant.with_wings([])) % len(ANSWER_SETS)]


def interpreter(version: str) -> str | None:
    """A working Python ``version`` (3.12): this one, one on PATH, or one pyenv installed."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(map(str, pyenv.glob(f"{version}.*/bin/python{version}")), reverse=True)
    for candidate in filter(None, candidates):
        works = subprocess.run([candidate, "-c", "pass"], capture_output=True, check=False)
        if works.returncode == 0:
            return candidate
    return None


def choices(axis: str) -> list[str]:
    values: list[str] = COOKIECUTTER[axis]
    return values


def expected_files(context: Mapping[str, Any]) -> set[str]:
    """The files a bake with ``context`` must produce, relative to the project."""
    return set(expected_sources(context))


def expected_sources(context: Mapping[str, Any]) -> dict[str, str]:
    """The files a bake with ``context`` must produce, each with the template file it is
    rendered from (both relative, the package's folder named in the target only)."""
    package = context["package_name"]
    sources: dict[str, str | None] = {}  # an alternative's file -> its target, if chosen
    for target, axes in MANIFEST["alternatives"].items():
        dest = Path(target.format(package_name=package))
        for combo in itertools.product(*(choices(axis) for axis in axes)):
            name = f"{dest.stem}.{'-'.join(combo)}{dest.suffix}"
            chosen = all(context[axis] == value for axis, value in zip(axes, combo, strict=True))
            sources[(dest.parent / name).as_posix()] = dest.as_posix() if chosen else None
    dropped_folders = []
    for target, answers in MANIFEST["only"].items():
        if any(context[prompt] != answer for prompt, answer in answers.items()):
            if target.endswith("/"):
                dropped_folders.append(target.format(package_name=package))
            else:
                sources[target.format(package_name=package)] = None
    files = {}
    for path in PROJECT_TEMPLATE.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            source = path.relative_to(PROJECT_TEMPLATE).as_posix()
            relative = source.replace("{{cookiecutter.package_name}}", package)
            kept = sources.get(relative, relative)
            if kept is not None and not relative.startswith(tuple(dropped_folders)):
                files[kept] = source
    return files


def alternative_sources() -> set[str]:
    """Every alternative file the manifest expects in the template (package as written there)."""
    sources = set()
    for target, axes in MANIFEST["alternatives"].items():
        dest = Path(target.format(package_name="{{cookiecutter.package_name}}"))
        for combo in itertools.product(*(choices(axis) for axis in axes)):
            sources.add((dest.parent / f"{dest.stem}.{'-'.join(combo)}{dest.suffix}").as_posix())
    return sources


def selected_variants() -> list[Variant]:
    """The variants to install and check: all, or those named in TEMPLATE_VARIANTS (comma-separated)."""
    wanted = [
        name.strip() for name in os.environ.get("TEMPLATE_VARIANTS", "").split(",") if name.strip()
    ]
    unknown = set(wanted) - {v.id for v in VARIANTS}
    if unknown:
        raise ValueError(f"TEMPLATE_VARIANTS names unknown variants: {sorted(unknown)}")
    return [v for v in VARIANTS if not wanted or v.id in wanted]


def bakes_checked(variant: Variant) -> list[Variant]:
    """The matrix checks a variant twice: with no wing, and with every wing it can have."""
    return [variant, variant.with_wings(variant.possible_wings)]


def alone(variant: Variant) -> list[Variant]:
    """The variant with each wing alone that the matrix checks on it (``ALONE``)."""
    return [variant.with_wings([wing]) for wing, ids in ALONE.items() if variant.base_id in ids]


if __name__ == "__main__":
    # The CI workflow's job matrix: python3 -m tests.matrix
    print(json.dumps([variant.id for variant in VARIANTS]))
