"""Refuse project and package names that would break the generated project.

Cookiecutter stops on exit code 1 and removes what it generated, so a bad
name leaves nothing behind. One line on stderr says which value and why.
"""

import json
import keyword
import sys

CONTEXT = json.loads(
    r"""{{ cookiecutter | tojson }}"""
)
MANIFEST = CONTEXT["_manifest"]
# What the generated project imports (kept equal to its code by the template's
# tests) and what it loads by name: database drivers, tools run as modules.
IMPORTED = frozenset(MANIFEST["imports"]) | frozenset(MANIFEST["loads"])
# Folders of the generated project that are importable from its root.
OWN = frozenset({"migrations", "tests"})
# The standard library's modules, and its regression tests, which
# sys.stdlib_module_names leaves out: ``python -m test`` runs CPython's.
STANDARD_LIBRARY = sys.stdlib_module_names | {"test"}


# The slug names the PostgreSQL databases ("<slug>_test" too) and the service's
# application_name, which PostgreSQL cuts at 63 bytes.
MAX_NAME_LENGTH = 50
# Free text, at most this long (it lands in titles, one-line descriptions and headers).
MAX_TEXT_LENGTH = {"project_name": 100, "description": 300, "author_name": 100, "author_email": 100}


def problem(name: str) -> str | None:
    """Why ``name`` cannot be a project slug or package name, or None."""
    if len(name) > MAX_NAME_LENGTH:
        return f"is longer than {MAX_NAME_LENGTH} characters"
    if not name.isascii():
        return "has characters outside ASCII (distribution names are ASCII)"
    if name.startswith("_") or name.endswith("_"):
        return "starts or ends with an underscore (distribution names start and end with a letter or digit)"
    if not name.isidentifier():
        return "is not a valid Python identifier (use lowercase letters, digits and underscores, not starting with a digit)"
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return "is a Python keyword"
    if name != name.lower():
        return "has uppercase letters (package names are lowercase)"
    if name in STANDARD_LIBRARY:
        return f"would shadow the standard library module {name!r}"
    if name in IMPORTED:
        return f"would shadow {name!r}, which the generated project imports"
    if name in OWN:
        return f"is the name of the generated project's own {name!r} folder"
    return None


NAMES = {field: CONTEXT[field] for field in ("project_slug", "package_name")}
# Free text lands inside Python, TOML and Markdown string literals.
TEXTS = {field: CONTEXT[field] for field in MAX_TEXT_LENGTH}


# Wings a SQLite service cannot have, and why.
POSTGRESQL_ONLY: dict[str, str] = MANIFEST["postgresql_only"]


def main() -> int:
    for wing, why in POSTGRESQL_ONLY.items():
        if CONTEXT[wing] and CONTEXT["database"] != "postgresql":
            print(f"ERROR: {wing} needs database postgresql: {why}.", file=sys.stderr)
            return 1
    for field, value in NAMES.items():
        reason = problem(value)
        if reason is not None:
            print(f"ERROR: {field} {value!r} {reason}.", file=sys.stderr)
            return 1
    for field, value in TEXTS.items():
        if len(value) > MAX_TEXT_LENGTH[field]:
            print(
                f"ERROR: {field} {value!r} is longer than {MAX_TEXT_LENGTH[field]} characters.",
                file=sys.stderr,
            )
            return 1
        if '"' in value or "\\" in value or "\n" in value:
            print(
                f"ERROR: {field} {value!r} may not contain double quotes, backslashes or newlines.",
                file=sys.stderr,
            )
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
