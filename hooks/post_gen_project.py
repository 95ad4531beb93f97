"""Keep the chosen variant's files and remove the others.

Everything variant-specific is data: ``_manifest`` in cookiecutter.json, which
the template's own tests read too.

- ``alternatives``: each key is a file of the generated project; the template
  holds one version of it per combination of the listed prompts' ``choices``,
  named ``<stem>.<choice>[-<choice>...]<suffix>``. The chosen version takes the
  file's name; exactly the other versions are deleted, nothing else.
- ``only``: each key is a file kept only when every listed prompt has the
  listed answer; otherwise it is deleted.

The versions of ``uv.lock`` are copied without rendering (``_copy_without_render``:
rendering twelve large files to keep one would triple the bake time); the one
Jinja expression each holds, the project's distribution name, is filled in here.

The hook touches nothing outside the project and is safe to run twice
(cruft re-runs it on update): no network, no git, no installs.
"""

import itertools
import json
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


def keep_only_when(target: str, answers: dict[str, str]) -> None:
    path = Path(target.format(**CONTEXT))
    if any(CONTEXT[prompt] != answer for prompt, answer in answers.items()):
        path.unlink(missing_ok=True)


def name_the_project_in_the_lock() -> None:
    lock = Path("uv.lock")
    expression, name = LOCK_NAME
    lock.write_text(lock.read_text().replace(expression, name))


def main() -> None:
    for target, axes in CONTEXT["_manifest"]["alternatives"].items():
        choose_alternative(target, axes)
    for target, answers in CONTEXT["_manifest"]["only"].items():
        keep_only_when(target, answers)
    name_the_project_in_the_lock()


if __name__ == "__main__":
    main()
