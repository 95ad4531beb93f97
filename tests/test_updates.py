"""Keeping a generated project current: cruft, and hooks that are safe to re-run."""

import subprocess
import sys
from pathlib import Path

from cookiecutter.generate import generate_context
from cookiecutter.prompt import prompt_for_config
from cookiecutter.utils import create_env_with_context

from .conftest import COOKIECUTTER_CLI, CRUFT_CLI, git
from .matrix import TEMPLATE_DIR


def cruft(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CRUFT_CLI, *args], cwd=cwd, capture_output=True, text=True, check=False)


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
        "{{cookiecutter.project_slug}}/src/{{cookiecutter.package_name}}/session.middleware.py"
    )
    text = middleware.read_text().replace(
        "class SessionMiddleware(ASGIMiddleware):", "class SessionMiddleware(ASGIMiddleware):  # v2"
    )
    middleware.write_text(text)
    git("commit", "--quiet", "-am", "middleware v2", cwd=template_repo)

    assert cruft("check", cwd=project).returncode == 1
    updated = cruft("update", "--skip-apply-ask", "-y", cwd=project)
    assert updated.returncode == 0, updated.stdout + updated.stderr

    session = (project / "src/my_service/session.py").read_text()
    assert "class SessionMiddleware(ASGIMiddleware):  # v2" in session
    assert not list(project.rglob("session.*.py")), "alternatives leaked into the project"
    assert cruft("check", cwd=project).returncode == 0


def bake_with_cli(template: Path, output_dir: Path) -> Path:
    subprocess.run(
        [COOKIECUTTER_CLI, "--no-input", "-o", str(output_dir), str(template)],
        check=True,
        capture_output=True,
    )
    return output_dir / "my_service"


def test_post_gen_hook_is_idempotent(tmp_path: Path) -> None:
    """Running the hook again on a baked project changes nothing and succeeds."""
    context = generate_context(context_file=str(TEMPLATE_DIR / "cookiecutter.json"))
    answers = prompt_for_config(context, no_input=True)
    env = create_env_with_context({"cookiecutter": answers})
    hook = tmp_path / "post_gen_project.py"
    source = (TEMPLATE_DIR / "hooks/post_gen_project.py").read_text()
    hook.write_text(env.from_string(source).render(cookiecutter=answers))
    project = bake_with_cli(TEMPLATE_DIR, tmp_path)
    before = {p: p.read_bytes() for p in project.rglob("*") if p.is_file()}

    subprocess.run([sys.executable, str(hook)], cwd=project, check=True, capture_output=True)

    assert {p: p.read_bytes() for p in project.rglob("*") if p.is_file()} == before


def test_post_gen_hook_deletes_only_the_manifests_alternatives(
    template_repo: Path, tmp_path: Path
) -> None:
    """A file that merely looks like an alternative is the project's own, and stays."""
    db = template_repo / "{{cookiecutter.project_slug}}/src/{{cookiecutter.package_name}}/db"
    (db / "engine.helpers.py").write_text('"""Not an alternative of engine.py."""\n')

    project = bake_with_cli(template_repo, tmp_path / "out")

    assert (project / "src/my_service/db/engine.helpers.py").is_file()
    assert not (project / "src/my_service/db/engine.postgresql.py").exists()
    assert "sqlite" in (project / "src/my_service/db/engine.py").read_text()
