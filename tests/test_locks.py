"""Every generated project installs reproducibly from the first minute: its uv.lock is current."""

import os
import subprocess
from pathlib import Path

import pytest
from pytest_cookies.plugin import Cookies
from uv import find_uv_bin

from .conftest import bake
from .locks import LOCK_AXES, combinations, lock_id
from .matrix import COOKIECUTTER, MANIFEST, VARIANTS, answers, interpreter


def python_of(combination: dict[str, str]) -> str:
    """The combination's Python; its absence skips the test loudly, or fails it under CI."""
    python = interpreter(combination["python_version"])
    if python is None:
        reason = f"no Python {combination['python_version']} interpreter found"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must check every lock")
        pytest.skip(f"SKIPPING {lock_id(combination)}: {reason}")
    return python


def uv(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [find_uv_bin(), *args], cwd=project, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize("wings", ["no-wings", "wings-with-packages"])
@pytest.mark.parametrize("combination", combinations(), ids=lock_id)
def test_the_baked_lock_is_current(
    cookies: Cookies, combination: dict[str, str], wings: str
) -> None:
    """With or without the wings that add packages: the hook takes those of the wings
    not chosen out of the lock, which must then be exactly what uv locks."""
    python = python_of(combination)
    chosen = dict.fromkeys(MANIFEST["wing_packages"], wings != "no-wings")
    # Runs of underscores become one hyphen in the lock's (normalized) project name.
    project = bake(cookies, **combination, **chosen, project_slug="fleet__tracker_2")

    check = uv(project, "lock", "--check", "--offline", "--python", python)

    assert check.returncode == 0, check.stderr
    lock = (project / "uv.lock").read_text()
    assert 'name = "fleet-tracker-2"' in lock
    for wing, packages in MANIFEST["wing_packages"].items():
        for package in packages:
            assert (f'name = "{package}"' in lock) == chosen[wing], package


def not_installed_by_the_matrix() -> list[dict[str, str]]:
    """The combinations no matrix variant installs (each variant has one Python)."""
    installed = {
        (v.database, v.driver, answers(v).get("python_version", COOKIECUTTER["python_version"][0]))
        for v in VARIANTS
    }
    return [c for c in combinations() if tuple(c[axis] for axis in LOCK_AXES) not in installed]


@pytest.mark.parametrize("combination", not_installed_by_the_matrix(), ids=lock_id)
def test_the_locks_the_matrix_does_not_install_install(
    cookies: Cookies, combination: dict[str, str]
) -> None:
    """So every lock's wheels are in uv's cache after a run: a bake installs offline."""
    python = python_of(combination)
    project = bake(cookies, **combination)

    install = uv(project, "sync", "--locked", "--quiet", "--python", python)

    assert install.returncode == 0, install.stderr
