"""Every slug the prompts accept, from 1 to 50 characters, gives code that is formatted and
lint-clean as ruff wants it, in every variant with every wing it can have: nothing wraps
differently at some length.

Baking 400 projects would take minutes (each bake compiles every template
anew); rendering the variant's Python files with cookiecutter's own Jinja
environment, each template compiled once, gives the same text in seconds.
"""

import subprocess
import sys
from pathlib import Path

import pytest
from cookiecutter.generate import generate_context
from cookiecutter.prompt import prompt_for_config
from cookiecutter.utils import create_env_with_context
from jinja2 import Template

from .matrix import PROJECT_TEMPLATE, TEMPLATE_DIR, VARIANTS, Variant, expected_sources

LENGTHS = range(1, 51)


def slug(length: int) -> str:
    """A valid slug of ``length`` characters, underscores included: svc_svc_s..."""
    name = ("svc_" * 13)[:length]
    return name[:-1] + "z" if name.endswith("_") else name


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.id)
def test_every_slug_length_is_formatted_and_lint_clean(variant: Variant, tmp_path: Path) -> None:
    compiled: dict[Path, Template] = {}
    for length in LENGTHS:
        context = generate_context(
            context_file=str(TEMPLATE_DIR / "cookiecutter.json"),
            extra_context={
                **variant.with_wings(variant.possible_wings).context,
                "project_slug": slug(length),
            },
        )
        answers = prompt_for_config(context, no_input=True)
        env = create_env_with_context({"cookiecutter": answers})
        for target, source in expected_sources(answers).items():
            if not target.endswith(".py") and target != "pyproject.toml":
                continue
            path = PROJECT_TEMPLATE / source
            if path not in compiled:
                compiled[path] = env.from_string(path.read_text())
            out = tmp_path / slug(length) / target
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(compiled[path].render(cookiecutter=answers))

    for check in (["format", "--check"], ["check"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *check, "--no-cache", "."],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert len(list(tmp_path.iterdir())) == len(LENGTHS)
