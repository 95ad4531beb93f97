"""The prompts as a person meets them, and replaying their answers."""

import os
import re
import subprocess
from pathlib import Path

import pexpect
import pytest

from .conftest import COOKIECUTTER_CLI
from .matrix import COOKIECUTTER, TEMPLATE_DIR

PROMPTS = COOKIECUTTER["__prompts__"]

# What a person types: free text, Enter for a suggested default, or a choice.
ANSWERS: dict[str, str] = {
    "project_name": "Order Tracking",
    "project_slug": "",  # accept the suggested order_tracking
    "package_name": "orders",
    "description": "Tracks orders.",
    "author_name": "Ada Lovelace",
    "author_email": "ada@example.com",
    "python_version": "3.12",
    "license": "Apache-2.0",
    "database": "postgresql",
    "driver": "sync",
    "session_strategy": "middleware",
    "metrics": "y",
    "idempotency_keys": "n",
    "reverse_proxy": "yes",
    "pgbouncer": "y",
    "read_replicas": "no",
    "workers": "",  # accept the default: no
    "jobs": "n",
    "tracing": "yes",
}


def question(key: str) -> str:
    prompt = PROMPTS[key]
    text: str = prompt["__prompt__"] if isinstance(prompt, dict) else prompt
    return text


def test_a_person_answers_every_question(tmp_path: Path) -> None:
    assert list(ANSWERS) == [key for key in COOKIECUTTER if not key.startswith("_")]
    child = pexpect.spawn(
        COOKIECUTTER_CLI,
        [str(TEMPLATE_DIR), "--output-dir", str(tmp_path)],
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
        encoding="utf-8",
        timeout=20,
        dimensions=(50, 200),
    )
    transcript: list[str] = []
    for number, (key, answer) in enumerate(ANSWERS.items(), start=1):
        child.expect(rf"\[{number}/{len(ANSWERS)}\]\S* {re.escape(question(key))}")
        if isinstance(COOKIECUTTER[key], list):
            for label in (v for k, v in PROMPTS[key].items() if k != "__prompt__"):
                child.expect(re.escape(label))
            child.expect(r"Choose from \S+ \S+: ")
            child.sendline(str(COOKIECUTTER[key].index(answer) + 1))
        else:
            child.expect(r": ")
            child.sendline(answer)
        transcript.append(str(child.before))
    child.expect(pexpect.EOF)
    child.close()

    assert child.exitstatus == 0, "".join(transcript)
    project = tmp_path / "order_tracking"
    assert (project / "src/orders/main.py").is_file()
    pyproject = (project / "pyproject.toml").read_text()
    assert 'requires-python = ">=3.12"' in pyproject
    assert 'license = "Apache-2.0"' in pyproject
    assert '"psycopg[binary]' in pyproject
    assert "class SessionMiddleware" in (project / "src/orders/session.py").read_text()
    assert "def create_item(" in (project / "src/orders/items/routes.py").read_text()
    assert "async def" not in (project / "src/orders/items/routes.py").read_text()
    # The wings answered yes, and only those.
    assert '"prometheus-client' in pyproject
    assert (project / "deploy/nginx.conf").is_file()
    assert (project / "src/orders/db/pgbouncer.py").is_file()
    assert not (project / "src/orders/idempotency").exists()
    assert not (project / "src/orders/db/replicas.py").exists()
    assert not (project / "src/orders/workers.py").exists()


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    """A cookiecutter user config that keeps replays and clones inside tmp_path."""
    config = tmp_path / "cookiecutter.yaml"
    config.write_text(
        f"replay_dir: {tmp_path / 'replay'}\ncookiecutters_dir: {tmp_path / 'cookiecutters'}\n"
    )
    return config


def cli(*args: str) -> None:
    subprocess.run([COOKIECUTTER_CLI, *args], check=True, capture_output=True)


def tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in root.rglob("*") if p.is_file()}


def test_replay_bakes_the_same_project_again(tmp_path: Path, config_file: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    cli(
        "--no-input", "--config-file", str(config_file), "--output-dir", str(first),
        str(TEMPLATE_DIR), "project_name=Replayed", "database=postgresql", "session_strategy=middleware",
    )  # fmt: skip
    assert (tmp_path / "replay" / f"{TEMPLATE_DIR.name}.json").is_file()

    cli(
        "--replay",
        "--config-file",
        str(config_file),
        "--output-dir",
        str(second),
        str(TEMPLATE_DIR),
    )

    assert tree(second / "replayed") == tree(first / "replayed")
    assert "class SessionMiddleware" in tree(second / "replayed")["src/replayed/session.py"]
