"""The template's own code meets the bar it sets for generated code."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .matrix import COOKIECUTTER, TEMPLATE_DIR, VARIANTS, selected_variants


def tool(*command: str, cwd: Path = TEMPLATE_DIR) -> str:
    result = subprocess.run(
        [sys.executable, "-m", *command], cwd=cwd, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_tests_and_tasks_are_lint_clean() -> None:
    tool("ruff", "check", "tests", "tasks.py")
    tool("ruff", "format", "--check", "tests", "tasks.py")


def test_tests_and_tasks_type_check_strictly() -> None:
    assert "Success" in tool("mypy")


def test_rendered_hooks_are_lint_clean(rendered_hooks: Path) -> None:
    config = str(TEMPLATE_DIR / "pyproject.toml")
    tool("ruff", "check", "--config", config, ".", cwd=rendered_hooks)
    tool("ruff", "format", "--check", "--config", config, ".", cwd=rendered_hooks)


def test_rendered_hooks_type_check_strictly(rendered_hooks: Path) -> None:
    out = tool("mypy", "--strict", "--python-version", "3.11", ".", cwd=rendered_hooks)
    assert "Success" in out


def test_ci_workflow_checks_every_variant_from_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    workflow = yaml.safe_load((TEMPLATE_DIR / ".github/workflows/ci.yml").read_text())
    jobs = workflow["jobs"]
    variant_job = jobs["variant"]

    assert jobs["variants"]["steps"][-1]["run"].startswith(
        'echo "matrix=$(python3 -m tests.matrix)"'
    )
    matrix = variant_job["strategy"]["matrix"]["variant"]
    assert matrix == "${{ fromJSON(needs.variants.outputs.matrix) }}"
    assert variant_job["env"]["TEMPLATE_VARIANTS"] == "${{ matrix.variant }}"
    assert variant_job["steps"][-1]["run"] == "python3 tasks.py test -m matrix"
    assert jobs["template"]["steps"][-1]["run"] == 'python3 tasks.py test -m "not matrix"'
    assert "pg_isready" in variant_job["services"]["postgres"]["options"]
    setup_python = next(s for s in variant_job["steps"] if "setup-python" in s.get("uses", ""))
    pythons = setup_python["with"]["python-version"].split()
    assert sorted(pythons) == sorted(COOKIECUTTER["python_version"])
    assert pythons[-1] == "3.11"  # the default python3 runs the tests
    assert "sudo apt-get install -y pgbouncer" in [step.get("run") for step in variant_job["steps"]]

    table = json.loads(tool("tests.matrix"))
    assert table == [variant.id for variant in VARIANTS]
    for variant in VARIANTS:
        monkeypatch.setenv("TEMPLATE_VARIANTS", variant.id)
        assert selected_variants() == [variant]


def test_pre_commit_passes_on_the_template(template_repo: Path, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "UV_PROJECT_ENVIRONMENT": str(TEMPLATE_DIR / ".venv"),
        # the hooks run uv, installed beside this interpreter
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit"),
    }
    result = subprocess.run(
        [str(Path(sys.executable).with_name("pre-commit")), "run", "--all-files"],
        cwd=template_repo,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "mypy (strict)" in result.stdout
