"""Every generated project installs reproducibly from the first minute: its uv.lock is current."""

import os
import subprocess

import pytest
from pytest_cookies.plugin import Cookies
from uv import find_uv_bin

from .conftest import bake
from .locks import combinations, lock_id
from .matrix import interpreter


@pytest.mark.parametrize("combination", combinations(), ids=lock_id)
def test_the_baked_lock_is_current(cookies: Cookies, combination: dict[str, str]) -> None:
    python = interpreter(combination["python_version"])
    if python is None:
        reason = f"no Python {combination['python_version']} interpreter found"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must check every lock")
        pytest.skip(f"SKIPPING {lock_id(combination)}: {reason}")
    # Runs of underscores become one hyphen in the lock's (normalized) project name.
    project = bake(cookies, **combination, project_slug="fleet__tracker_2")

    check = subprocess.run(
        [find_uv_bin(), "lock", "--check", "--offline", "--python", python],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )

    assert check.returncode == 0, check.stderr
    assert 'name = "fleet-tracker-2"' in (project / "uv.lock").read_text()
