"""The generated projects' ``uv.lock`` files, kept in the template as data.

A project's lock depends on its database and driver (its dependencies) and on
its lowest Python version (``requires-python``), so the template holds one per
combination, ``{{cookiecutter.project_slug}}/uv.<database>-<driver>-<python>.lock``;
the post-generation hook names the chosen one ``uv.lock`` (``_manifest.alternatives``).
Each is locked with every wing that adds packages (``_manifest.wing_packages``);
the hook takes out those of the wings not chosen.
In the template each names the project ``{{ cookiecutter.project_slug | slugify }}``:
baking renders it with the project's own (normalized) name, offline.

The matrix installs every variant with ``uv sync --locked``, so the versions
in these files are exactly the versions it tested. To refresh them:

    python3 tasks.py lock             after changing the generated pyproject.toml
    python3 tasks.py lock --upgrade   move every pin to the newest release

Each combination is baked under a placeholder name, locked by uv (this needs
PyPI), and its lock written back with the placeholder turned into Jinja.
"""

import argparse
import itertools
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from cookiecutter.main import cookiecutter
from uv import find_uv_bin

from .matrix import COOKIECUTTER, MANIFEST, PROJECT_TEMPLATE, TEMPLATE_DIR, interpreter

LOCK_AXES = ("database", "driver", "python_version")
# Each lock names the project once, as uv normalizes a distribution name.
PLACEHOLDER_SLUG = "lock_placeholder"
PLACEHOLDER_NAME = 'name = "lock-placeholder"'
TEMPLATE_NAME = 'name = "{{ cookiecutter.project_slug | slugify }}"'
JINJA = re.compile(r"\{\{|\{%|\{#")


def combinations() -> list[dict[str, str]]:
    """Every answer to the prompts a lock depends on."""
    values = itertools.product(*(COOKIECUTTER[axis] for axis in LOCK_AXES))
    return [dict(zip(LOCK_AXES, combination, strict=True)) for combination in values]


def lock_id(combination: dict[str, str]) -> str:
    return "-".join(combination[axis] for axis in LOCK_AXES)


def template_lock(combination: dict[str, str]) -> Path:
    return PROJECT_TEMPLATE / f"uv.{lock_id(combination)}.lock"


def relock(combination: dict[str, str], output_dir: Path, *, upgrade: bool) -> None:
    """Lock one combination anew and write the result back into the template."""
    source = template_lock(combination)
    new = not source.exists()
    if new:
        source.write_text("")  # a version of uv.lock must exist for the bake
    try:
        project = Path(
            cookiecutter(
                str(TEMPLATE_DIR),
                no_input=True,
                output_dir=str(output_dir),
                extra_context={
                    **combination,
                    **dict.fromkeys(MANIFEST["wing_packages"], True),
                    "project_slug": PLACEHOLDER_SLUG,
                    "package_name": PLACEHOLDER_SLUG,
                },
            )
        )
    finally:
        if new:
            source.unlink()
    if new:
        (project / "uv.lock").unlink()
    python = interpreter(combination["python_version"]) or sys.executable
    command = [find_uv_bin(), "lock", "--quiet", "--python", python]
    subprocess.run([*command, *(["--upgrade"] if upgrade else [])], cwd=project, check=True)
    text = (project / "uv.lock").read_text()
    if text.count(PLACEHOLDER_NAME) != 1 or JINJA.search(text):
        raise SystemExit(
            f"{source.name}: the lock does not name the project exactly once as Jinja can"
        )
    source.write_text(text.replace(PLACEHOLDER_NAME, TEMPLATE_NAME))
    print(f"locked {source.relative_to(TEMPLATE_DIR)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python3 tasks.py lock", description=__doc__)
    parser.add_argument(
        "--upgrade", action="store_true", help="move every pin to the newest release"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as output_dir:
        for combination in combinations():
            relock(combination, Path(output_dir) / lock_id(combination), upgrade=args.upgrade)


if __name__ == "__main__":
    main()
