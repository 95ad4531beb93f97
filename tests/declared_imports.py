"""What a baked project imports, and whether its pyproject.toml declares it.

Run inside a variant's own environment, from the project's directory, it
prints which third-party modules its code imports that no declared
dependency provides (``runtime`` for ``src`` and ``migrations``, ``dev`` for
``tests``)::

    uv run python /path/to/template/tests/declared_imports.py

The template's tests also use ``imported_modules`` to keep the pre-generation
hook's reserved names equal to what the generated project really imports.
"""

import ast
import json
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

CODE_FOLDERS = ("src", "migrations", "tests")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_modules(*folders: Path) -> set[str]:
    """The top-level modules that the Python files under ``folders`` import absolutely."""
    names: set[str] = set()
    for folder in folders:
        for path in folder.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module.split(".")[0])
    return names


def third_party_imports(project: Path, *folders: str) -> set[str]:
    """What ``folders`` of ``project`` import beyond the standard library and the project."""
    own = {path.name for path in (project / "src").iterdir()} | {"tests"}
    imported = imported_modules(*(project / folder for folder in folders))
    return imported - set(sys.stdlib_module_names) - own


def declared(requirements: list[str]) -> set[str]:
    names = set()
    for requirement in requirements:
        match = re.match(r"[A-Za-z0-9._-]+", requirement)
        assert match, requirement
        names.add(normalize(match.group()))
    return names


def undeclared(project: Path) -> dict[str, dict[str, list[str]]]:
    """Imported modules that no declared distribution provides, with who does provide them."""
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    runtime = declared(pyproject["project"]["dependencies"])
    dev = runtime | declared(pyproject["dependency-groups"]["dev"])
    providers = packages_distributions()

    def missing(modules: set[str], allowed: set[str]) -> dict[str, list[str]]:
        report = {}
        for module in sorted(modules):
            distributions = {normalize(d) for d in providers.get(module, [module])}
            if not distributions & allowed:
                report[module] = sorted(distributions)
        return report

    return {
        "runtime": missing(third_party_imports(project, "src", "migrations"), runtime),
        "dev": missing(third_party_imports(project, "tests"), dev),
    }


if __name__ == "__main__":
    print(json.dumps(undeclared(Path.cwd())))
