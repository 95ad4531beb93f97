"""Where a GET by id's work goes, counted in instructions: repeatable, whatever else the
machine is doing.

    python3 tasks.py instructions [--requests N]

Bakes ``postgresql-async-dependency``, migrates and seeds a fresh database with
1,000 items, and drives ``GET /items/{id}`` in-process (``drive.py``) under
valgrind's callgrind, with the instrumentation on only while the requests are
served (after the start and a warm-up): the variant whole, without its
middleware, and its unit of work and repository alone; the lean tutorial app
and its session alone; FastAPI over a raw asyncpg pool. Counted is what the
service's own process executes in user space, drivers and event loop included;
not the kernel's share of a round trip, nor the database server's. Two cases
run at a time. Writes benchmarks/instructions.{md,json} and the table into the
README between its instructions markers.
"""

import argparse
import json
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import run as bench

HERE = Path(__file__).resolve().parent
VARIANT = next(v for v in bench.VARIANTS if v.id == "postgresql-async-dependency")
LABELS = {
    "variant": "postgresql-async-dependency, every feature on",
    "variant-no-middleware": "the same without its middleware",
    "variant-unit-of-work": "its unit of work and the repository's get, no HTTP",
    "lean": "the lean tutorial app (lean_async.py)",
    "lean-session": "the lean app's session and session.get, no HTTP",
    "fastapi-raw": "FastAPI over a raw asyncpg pool (fastapi_raw.py)",
}


def count(case: str, requests: int, project: Path, env: dict[str, str], out: Path) -> int:
    """The instructions ``requests`` GETs of ``case`` execute."""
    command = [
        "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
        str(project / ".venv/bin/python"), str(HERE / "drive.py"), case, str(requests),
    ]  # fmt: skip
    with subprocess.Popen(
        command,
        cwd=project,
        env={**os.environ, **env, "PYTHONHASHSEED": "0"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as driver:
        assert driver.stdin
        assert driver.stdout
        for word, switch in (("ready", "on"), ("done", "off")):
            line = driver.stdout.readline().strip()
            if line != word:
                raise SystemExit(f"drive.py {case}: expected {word!r}, got {line!r}")
            control = ["callgrind_control", "-i", switch, str(driver.pid)]
            subprocess.run(control, check=True, capture_output=True)
            driver.stdin.write("\n")
            driver.stdin.flush()
        if driver.wait(timeout=600) != 0:
            raise SystemExit(f"drive.py {case} failed")
    # What was counted while the instrumentation was on ("summary:" is 0 when toggled).
    totals = next(line for line in out.read_text().splitlines() if line.startswith("totals:"))
    return int(totals.split()[1])


def markdown(results: dict[str, Any]) -> str:
    per = results["per_request"]
    lines = [
        f"Machine: {results['machine']}; valgrind's callgrind. {results['requests']} GET"
        " /items/{id} after a warm-up of 50, driven in-process (no uvicorn, no sockets of"
        " the client's); instructions the service's process executes per request, in user"
        " space (its drivers and event loop included, the kernel's and the database"
        " server's work not).",
        "",
        "| case | instructions per GET | × the lean app's |",
        "| --- | ---: | ---: |",
    ]
    for case, label in LABELS.items():
        lines.append(f"| {label} | {per[case]:,} | {per[case] / per['lean']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: apt-get install valgrind")
    with tempfile.TemporaryDirectory(prefix="instructions-") as tmp:
        work = Path(tmp)
        bench.log(f"baking and installing {VARIANT.id}")
        project = bench.bake_and_install(VARIANT, work)
        database, url = bench.fresh_database("instructions", VARIANT, work)
        bench.migrate(project, url)
        bench.seed(bench.Target("instructions", "", [], project, {}, database))
        env = {
            "DATABASE_URL": url,
            "ASYNCPG_URL": bench.postgres_url(database),
            "DB_POOL_SIZE": str(bench.POOL_SIZE),
            "DB_MAX_OVERFLOW": "0",
        }
        with ThreadPoolExecutor(max_workers=2) as pool:
            counted = dict(
                zip(
                    LABELS,
                    pool.map(
                        lambda case: count(
                            case, args.requests, project, env, work / f"{case}.callgrind"
                        ),
                        LABELS,
                    ),
                    strict=True,
                )
            )
        bench.drop_database(database)
    per_request = {case: round(n / args.requests) for case, n in counted.items()}
    for case, n in per_request.items():
        bench.log(f"{case:<24} {n:>12,} instructions per GET")
    results = {
        "machine": bench.machine(wrk=False),
        "requests": args.requests,
        "per_request": per_request,
    }
    (HERE / "instructions.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (HERE / "instructions.md").write_text(table)
    bench.update_readme(table, "instructions")
    print(table)


if __name__ == "__main__":
    main()
