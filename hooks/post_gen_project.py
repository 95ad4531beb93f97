"""Keep the chosen variant's files and remove the others.

Everything variant-specific is data: ``_manifest`` in cookiecutter.json, which
the template's own tests read too.

- ``alternatives``: each key is a file of the generated project; the template
  holds one version of it per combination of the listed prompts' ``choices``,
  named ``<stem>.<choice>[-<choice>...]<suffix>``. The chosen version takes the
  file's name; exactly the other versions are deleted, nothing else.
- ``only``: each key is a file (or, ending in ``/``, a folder) kept only when
  every listed prompt has the listed answer; otherwise it is deleted. A wing's
  files are listed here with its prompt.

The versions of ``uv.lock`` are copied without rendering (``_copy_without_render``:
rendering twelve large files to keep one would triple the bake time); the one
Jinja expression each holds, the project's distribution name, is filled in here.
Each lock pins what every wing needs: ``wing_packages`` names the packages a
wing adds, and those of the wings not chosen are taken out of the lock (with
whatever only they needed), so that it is exactly the lock of the project's own
``pyproject.toml``.

The hook touches nothing outside the project and is safe to run twice
(cruft re-runs it on update): no network, no git, no installs.
"""

import itertools
import json
import re
import shutil
import sys
from pathlib import Path

CONTEXT = json.loads(
    r"""{{ cookiecutter | tojson }}"""
)
# uv.lock names the project as uv normalizes it: runs of "_" become one "-".
LOCK_NAME = ("{% raw %}{{ cookiecutter.project_slug | slugify }}{% endraw %}", {{ cookiecutter.project_slug | slugify | tojson }})


def choose_alternative(target: str, axes: list[str]) -> None:
    dest = Path(target.format(**CONTEXT))
    chosen = "-".join(CONTEXT[axis] for axis in axes)
    choices = CONTEXT["_manifest"]["choices"]
    for combination in itertools.product(*(choices[axis] for axis in axes)):
        version = dest.with_name(f"{dest.stem}.{'-'.join(combination)}{dest.suffix}")
        if "-".join(combination) == chosen:
            if version.is_file():  # absent when the hook runs again
                version.replace(dest)
        else:
            version.unlink(missing_ok=True)
    if not dest.is_file():
        sys.exit(f"ERROR: no version of {target} for {chosen!r} in the template.")


def keep_only_when(target: str, answers: dict[str, str | bool]) -> None:
    path = Path(target.format(**CONTEXT))
    if all(CONTEXT[prompt] == answer for prompt, answer in answers.items()):
        return
    if target.endswith("/"):
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def name_the_project_in_the_lock() -> None:
    lock = Path("uv.lock")
    expression, name = LOCK_NAME
    lock.write_text(lock.read_text().replace(expression, name))


# In a lock: a package's own name, and a reference to one (a dependency or a requirement).
_NAME = re.compile(r'^name = "([^"]+)"')
_REFERENCE = re.compile(r'^ *\{ name = "([^"]+)"', re.M)
_PACKAGE = "\n[[package]]\n"
_THE_PROJECT = 'source = { editable = "." }'


def take_out_of_the_lock(dropped: set[str]) -> None:
    """Remove ``dropped`` from the project's requirements in ``uv.lock``, then every
    package nothing left depends on: what uv locks for the project without them."""
    lock = Path("uv.lock")
    header, *packages = lock.read_text().split(_PACKAGE)
    packages = [
        "".join(
            line
            for line in package.splitlines(keepends=True)
            if (reference := _REFERENCE.match(line)) is None or reference[1] not in dropped
        )
        if _THE_PROJECT in package
        else package
        for package in packages
    ]
    while True:
        needed = {name for package in packages for name in _REFERENCE.findall(package)}
        kept = [p for p in packages if _THE_PROJECT in p or _name(p) in needed]
        if len(kept) == len(packages):
            break
        packages = kept
    lock.write_text(_PACKAGE.join([header, *packages]))


def _name(package: str) -> str:
    match = _NAME.match(package)
    if match is None:
        sys.exit("ERROR: uv.lock has a package without a name.")
    return match[1]


def main() -> None:
    for target, axes in CONTEXT["_manifest"]["alternatives"].items():
        choose_alternative(target, axes)
    for target, answers in CONTEXT["_manifest"]["only"].items():
        keep_only_when(target, answers)
    name_the_project_in_the_lock()
    wings = CONTEXT["_manifest"]["wing_packages"]
    take_out_of_the_lock({name for wing in wings if not CONTEXT[wing] for name in wings[wing]})


if __name__ == "__main__":
    main()
