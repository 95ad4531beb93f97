"""Keeping a generated project current: cruft, and hooks that are safe to re-run."""

import subprocess
import sys
from pathlib import Path

from cookiecutter.generate import generate_context
from cookiecutter.prompt import prompt_for_config
from cookiecutter.utils import create_env_with_context

from .conftest import git
from .matrix import TEMPLATE_DIR

CRUFT = str(Path(sys.executable).with_name("cruft"))


def cruft(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CRUFT, *args], cwd=cwd, capture_output=True, text=True, check=False)


def test_cruft_create_check_and_update(template_repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    created = cruft(
        "create", "--no-input", "--output-dir", str(out), str(template_repo),
        "--extra-context", '{"database": "postgresql", "session_strategy": "middleware"}',
        cwd=tmp_path,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    project = out / "my_service"
    assert "cruft.json" not in {p.name for p in template_repo.iterdir()}
    assert (project / ".cruft.json").is_file()
    git("init", "--quiet", cwd=project)
    git("add", "--all", cwd=project)
    git("commit", "--quiet", "-m", "baked", cwd=project)
    assert cruft("check", cwd=project).returncode == 0

    # Upstream changes the middleware: a file that is one of several alternatives.
    middleware = template_repo / (
        "{{cookiecutter.project_slug}}/src/{{cookiecutter.package_name}}/db/session.middleware-async.py"
    )
    text = middleware.read_text().replace(
        "class SessionMiddleware:", "class SessionMiddleware:  # v2"
    )
    middleware.write_text(text)
    git("commit", "--quiet", "-am", "middleware v2", cwd=template_repo)

    assert cruft("check", cwd=project).returncode == 1
    updated = cruft("update", "--skip-apply-ask", "-y", cwd=project)
    assert updated.returncode == 0, updated.stdout + updated.stderr

    session = (project / "src/my_service/db/session.py").read_text()
    assert "class SessionMiddleware:  # v2" in session
    assert not list(project.rglob("session.*-*.py")), "alternatives leaked into the project"
    assert cruft("check", cwd=project).returncode == 0


def test_post_gen_hook_is_idempotent(tmp_path: Path) -> None:
    """Running the hook again on a baked project changes nothing and succeeds."""
    context = generate_context(context_file=str(TEMPLATE_DIR / "cookiecutter.json"))
    answers = prompt_for_config(context, no_input=True)
    env = create_env_with_context({"cookiecutter": answers})
    hook = tmp_path / "post_gen_project.py"
    source = (TEMPLATE_DIR / "hooks/post_gen_project.py").read_text()
    hook.write_text(env.from_string(source).render(cookiecutter=answers))
    subprocess.run(
        [
            sys.executable.replace("python", "cookiecutter"),
            "--no-input",
            "-o",
            str(tmp_path),
            str(TEMPLATE_DIR),
        ],
        check=True,
        capture_output=True,
    )
    project = tmp_path / "my_service"
    before = {p: p.read_bytes() for p in project.rglob("*") if p.is_file()}

    subprocess.run([sys.executable, str(hook)], cwd=project, check=True, capture_output=True)

    assert {p: p.read_bytes() for p in project.rglob("*") if p.is_file()} == before
