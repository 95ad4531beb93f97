"""What the jobs wing costs a write, and how fast one worker handles jobs.

    python3 tasks.py jobs [--rounds N] [--duration SECONDS] [--variants ID,...]

For each variant (default: the four with a dependency): baked with no wing and with
the jobs wing, each on a fresh database seeded with 1,000 items, served by one
uvicorn worker (DB_POOL_SIZE=10, no overflow); wrk with 32 connections sends
PATCH /items/{random id}, the two bakes taking turns. With the wing, each PATCH
records a job in its transaction (no worker runs meanwhile). Reported: the median
requests/s and the server's CPU time per request. Then one worker
(python -m my_service.jobs worker, JOBS_THREADS=8) handles every job the runs
recorded: jobs per second, from its start to the last one handled.

Writes benchmarks/jobs.json and jobs.md; needs wrk, Redis on 127.0.0.1:6379 and,
for the PostgreSQL variants, the server run.py uses.
"""

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from run import (  # the load driver of tasks.py bench
    HERE,
    Target,
    cpu_seconds,
    free_port,
    log,
    machine,
    postgres_url,
    seed,
    start,
    variant_target,
    wrk,
)

from tests.matrix import VARIANTS  # run.py puts the template on sys.path

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://localhost:6379/0")
PATCH = """
local n = 0
request = function()
  n = n + 1
  local body = '{"description": "change ' .. n .. '"}'
  local path = "/items/" .. math.random(1, 1000)
  return wrk.format("PATCH", path, {["Content-Type"] = "application/json"}, body)
end
"""
HANDLED = "SELECT count(*) FROM jobs WHERE handled_at IS NOT NULL"
DEFAULT_VARIANTS = [v.id for v in VARIANTS if v.session_strategy == "dependency"]


def count(target: Target, query: str) -> int:
    if target.sqlite:
        with sqlite3.connect(target.database) as connection:
            return int(connection.execute(query).fetchone()[0])
    with psycopg.connect(postgres_url(target.database, server=target.server)) as connection:
        row = connection.execute(query).fetchone()
        return int(row[0]) if row else 0


def patch_run(target: Target, duration: float, scripts: Path) -> dict[str, float]:
    port = free_port()
    server = start(target, port)
    try:
        wrk(port, "patch", 1, scripts, request=PATCH)  # warm-up
        before = cpu_seconds(server.pid)
        result = wrk(port, "patch", duration, scripts, request=PATCH)
        cpu = cpu_seconds(server.pid) - before
    finally:
        server.terminate()
        server.wait(timeout=30)
    if result["non_2xx"] or result["socket_errors"]:
        raise SystemExit(f"{target.name}: {result}")
    requests = result["requests"]
    return {
        "rps": requests / (result["duration_us"] / 1e6),
        "cpu_us": cpu / requests * 1e6,
        "p99_ms": result["p99_us"] / 1000,
    }


def drain(target: Target, work: Path) -> dict[str, float]:
    """One worker handles every job recorded: how many, and how fast."""
    jobs = count(target, "SELECT count(*) FROM jobs")
    log_path = work / f"{target.name}-worker.log"
    env = {
        **os.environ,
        **target.env,
        "JOBS_BROKER_URL": REDIS_URL,
        "JOBS_NAMESPACE": f"bench-{uuid.uuid4().hex[:12]}",
        "LOG_LEVEL": "WARNING",
    }
    python = target.cwd / ".venv/bin/python"
    with log_path.open("wb") as output:
        worker = subprocess.Popen(
            [str(python), "-m", "my_service.jobs", "worker"],
            cwd=target.cwd,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    started = time.monotonic()
    try:
        while (handled := count(target, HANDLED)) < jobs:
            if worker.poll() is not None:
                raise SystemExit(f"the worker exited: {log_path.read_text()}")
            if time.monotonic() - started > 600:
                raise SystemExit(f"{handled} of {jobs} jobs handled in 10 minutes")
            time.sleep(0.1)
        seconds = time.monotonic() - started
        cpu = cpu_seconds(worker.pid)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    effects = count(target, "SELECT count(*) FROM item_events WHERE action = 'announced'")
    return {
        "jobs": jobs,
        "effects": effects,
        "seconds": seconds,
        "jobs_per_s": jobs / seconds,
        "worker_cpu_us_per_job": cpu / jobs * 1e6,
    }


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"Measured {results['date']} on {results['machine']}: median of {results['rounds']}"
        f" rounds of {results['duration']:g} s, PATCH /items/{{id}} with 32 connections.",
        "",
        "| variant | PATCH req/s, no wing | with jobs | CPU µs per PATCH, no wing | with jobs"
        " | jobs handled by one worker | jobs/s | worker CPU µs per job |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for variant, row in results["variants"].items():
        bare, jobs, drained = row["none"], row["jobs"], row["drain"]
        lines.append(
            f"| {variant} | {bare['rps']:,.0f} | {jobs['rps']:,.0f}"
            f" ({jobs['rps'] / bare['rps']:.2f}×) | {bare['cpu_us']:,.0f} | {jobs['cpu_us']:,.0f}"
            f" (+{jobs['cpu_us'] - bare['cpu_us']:,.0f}) | {drained['jobs']:,}"
            f" | {drained['jobs_per_s']:,.0f} | {drained['worker_cpu_us_per_job']:,.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS))
    args = parser.parse_args()
    by_id = {v.id: v for v in VARIANTS}
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "rounds": args.rounds,
        "duration": args.duration,
        "variants": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as temporary:
        work = Path(temporary)
        scripts = work / "scripts"
        scripts.mkdir()
        env = {"DB_POOL_SIZE": "10", "DB_MAX_OVERFLOW": "0", "LOG_LEVEL": "WARNING"}
        for name in args.variants.split(","):
            variant = by_id[name]
            targets = {
                "none": variant_target(variant, work, env),
                "jobs": variant_target(variant.with_wings(["jobs"]), work, env),
            }
            runs: dict[str, list[dict[str, float]]] = {key: [] for key in targets}
            for target in targets.values():
                seed(target)
            for round_number in range(args.rounds):
                order = list(targets) if round_number % 2 == 0 else list(reversed(targets))
                for key in order:
                    log(f"{name}, {key}: round {round_number + 1}")
                    runs[key].append(patch_run(targets[key], args.duration, scripts))
            row: dict[str, Any] = {
                key: {
                    measure: statistics.median(run[measure] for run in rounds)
                    for measure in rounds[0]
                }
                for key, rounds in runs.items()
            }
            log(f"{name}: one worker handles the jobs")
            row["drain"] = drain(targets["jobs"], work)
            results["variants"][name] = row
    (HERE / "jobs.json").write_text(json.dumps(results, indent=2) + "\n")
    (HERE / "jobs.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
