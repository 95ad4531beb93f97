#!/usr/bin/env python3
"""The template's one entry point. Needs only Python 3.11+; everything else it installs.

    python3 tasks.py test [PYTEST_ARGS...]  lint the template's code, bake every variant,
                                            install, check and test each one (the CI command)
    python3 tasks.py demo [OUTPUT_DIR]      bake the default project (SQLite, no questions),
                                            install and migrate it, and serve it on :8000
    python3 tasks.py bench [ARGS...]        load every variant and the reference apps with wrk;
                                            write benchmarks/results.{md,json,png} (needs wrk)
    python3 tasks.py scale [ARGS...]        each variant and the tutorial app at 1,000 to 10 million
                                            rows; write benchmarks/scale.{md,json,png} (needs wrk)
    python3 tasks.py instructions [ARGS...] where a GET by id's work goes, in instructions counted
                                            by callgrind; write benchmarks/instructions.{md,json}
    python3 tasks.py jobs [ARGS...]         what recording a job costs a PATCH, and jobs per second
                                            through one worker; write benchmarks/jobs.{md,json}
                                            (needs wrk and Redis)
    python3 tasks.py contention [ARGS...]   40 clients creating, reading and updating the same
                                            20 rows of each SQLite variant (needs wrk)
    python3 tasks.py lock [--upgrade]       re-lock the generated projects' uv.lock files, kept
                                            in the template (needs PyPI; see tests/locks.py)
    python3 tasks.py sizes                  count the lines, settings and files of every variant's
                                            bakes with no wing and every wing; into the README

uv comes from PATH, or is installed once into .bootstrap/ with pip. The
template's own tools are pinned in uv.lock and installed into .venv.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
BOOTSTRAP = ROOT / ".bootstrap"


def find_uv() -> str:
    on_path = shutil.which("uv")
    if on_path:
        return on_path
    bin_dir = BOOTSTRAP / ("Scripts" if os.name == "nt" else "bin")
    uv = bin_dir / "uv"
    if not uv.exists():
        print("tasks.py: installing uv into .bootstrap/", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(BOOTSTRAP)], check=True)
        pip = [
            str(bin_dir / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ]
        subprocess.run([*pip, "uv"], check=True)
    return str(uv)


def run(*command: str, cwd: Path = ROOT) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, cwd=cwd, check=True)


def test(pytest_args: list[str]) -> None:
    uv = find_uv()
    run(uv, "sync", "--frozen", "--compile-bytecode", "--python", sys.executable)
    jobs = os.environ.get("TEMPLATE_TEST_JOBS", str(min(os.cpu_count() or 1, 4)))
    run(uv, "run", "--frozen", "pytest", "-n", jobs, "--dist", "loadgroup", *pytest_args)


def bench(script: str, args: list[str]) -> None:
    uv = find_uv()
    run(
        uv, "sync", "--frozen", "--group", "bench", "--compile-bytecode", "--python", sys.executable
    )
    run(uv, "run", "--frozen", "python", f"benchmarks/{script}.py", *args)


def template_module(module: str, args: list[str]) -> None:
    """``python -m tests.<module>`` in the template's environment."""
    uv = find_uv()
    run(uv, "sync", "--frozen", "--python", sys.executable)
    run(uv, "run", "--frozen", "python", "-m", f"tests.{module}", *args)


def demo(output_dir: Path) -> None:
    uv = find_uv()
    run(uv, "sync", "--frozen", "--python", sys.executable)
    project = output_dir / "my_service"
    if project.exists():
        print(f"tasks.py: {project} exists; serving it as it is", flush=True)
    else:
        run(
            uv,
            "run",
            "--frozen",
            "cookiecutter",
            "--no-input",
            "--output-dir",
            str(output_dir),
            str(ROOT),
        )
    run(uv, "sync", "--python", sys.executable, cwd=project)
    run(uv, "run", "alembic", "upgrade", "head", cwd=project)
    print(
        "tasks.py: serving on http://127.0.0.1:8000 (API docs at /docs); Ctrl-C stops", flush=True
    )
    # This process becomes the server: SIGTERM (timeout, a process manager) or Ctrl-C
    # stops it, with nothing left behind (uv run would stand between them).
    python = project / ".venv" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    os.chdir(project)
    os.execv(python, [str(python), "-m", "my_service", "--port", "8000"])


def main(argv: list[str]) -> int:
    benchmarks = {"bench": "run", "scale": "scale", "instructions": "instructions", "jobs": "jobs"}
    if not argv or argv[0] not in {"test", "demo", "contention", "lock", "sizes", *benchmarks}:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        if argv[0] == "test":
            test(argv[1:])
        elif argv[0] in benchmarks:
            bench(benchmarks[argv[0]], argv[1:])
        elif argv[0] == "contention":
            bench("contention", argv[1:])
        elif argv[0] in {"lock", "sizes"}:
            template_module({"lock": "locks", "sizes": "sizes"}[argv[0]], argv[1:])
        else:
            demo(Path(argv[1]).resolve() if len(argv) > 1 else ROOT / "build" / "demo")
    except subprocess.CalledProcessError as error:
        return error.returncode or 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
