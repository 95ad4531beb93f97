"""Where a request's work goes, and what each wing adds to it, counted in instructions:
repeatable, whatever else the machine is doing.

    python3 tasks.py instructions [--requests N]

Bakes ``postgresql-async-dependency`` with no wing, with each wing alone and with
every wing; migrates and seeds a fresh database for each with 1,000 items; and
drives ``GET /items/{id}`` and ``POST /items`` in-process (``drive.py``) under
valgrind's callgrind, with the instrumentation on only while the requests are
served (after the start and a warm-up). The bake with no wing is also counted
without its middleware, and its unit of work and repository alone; beside it
the lean tutorial app, its session alone, and FastAPI over a raw asyncpg pool.
The tracing wing's bake is counted twice: without an endpoint (nothing is set up), and
exporting every span over OTLP/HTTP to a collector this script serves, the spans of
the requests flushed within the count.
Counted is what the service's own process executes in user space, drivers and
event loop included; not the kernel's share of a round trip, nor the database
server's. Two cases run at a time. Writes benchmarks/instructions.{md,json}
and the tables into the README between its instructions markers.
"""

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import run as bench

from tests.matrix import WINGS, Variant  # run.py puts the template on sys.path

HERE = Path(__file__).resolve().parent
BASE = next(v for v in bench.VARIANTS if v.id == "postgresql-async-dependency")
# The bakes counted: no wing, each wing alone, every wing.
BAKES: dict[str, Variant] = {
    "no wings": BASE,
    **{wing: BASE.with_wings([wing]) for wing in WINGS},
    "every wing": BASE.with_wings(BASE.possible_wings),
}
# The tracing wing's bake again, exporting every span to a collector of this script's.
EXPORTING = "tracing, exporting"
# What a wing needs of DATABASE_URL to do its work when connected straight to PostgreSQL.
URL_QUERY = {"pgbouncer": "?plugin=pgbouncer"}
# The layers of a GET, on the bake with no wing (drive.py's cases).
LAYERS = {
    "variant": "postgresql-async-dependency, no wings",
    "variant-no-middleware": "the same without its middleware",
    "variant-unit-of-work": "its unit of work and the repository's get, no HTTP",
    "lean": "the lean tutorial app (lean_async.py)",
    "lean-session": "the lean app's session and session.get, no HTTP",
    "fastapi-raw": "FastAPI over a raw asyncpg pool (fastapi_raw.py)",
}
WING_NOTES = {
    "pgbouncer": "`?plugin=pgbouncer` in `DATABASE_URL`, still straight to PostgreSQL",
    "read_replicas": "no standby configured",
    "reverse_proxy": "nginx's work is outside the service's process",
    "tracing": "no `OTEL_EXPORTER_OTLP_ENDPOINT`: nothing set up",
    EXPORTING: "every span sent over OTLP/HTTP, in batches, to a collector outside the process",
    "every wing": "straight to PostgreSQL: no plugin, no standby, no tracing endpoint",
}


class Collector(ThreadingHTTPServer):
    """An OTLP/HTTP collector that reads each export and answers 200, in this process."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Discard)


class _Discard(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


def count(case: str, requests: int, project: Path, env: dict[str, str], out: Path) -> int:
    """The instructions ``requests`` requests of ``case`` execute."""
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
        if driver.wait(timeout=900) != 0:
            raise SystemExit(f"drive.py {case} failed")
    # What was counted while the instrumentation was on ("summary:" is 0 when toggled).
    totals = next(line for line in out.read_text().splitlines() if line.startswith("totals:"))
    return int(totals.split()[1])


def markdown(results: dict[str, Any]) -> str:
    layers, bakes = results["layers"], results["bakes"]
    lines = [
        f"Machine: {results['machine']}; valgrind's callgrind. {results['requests']} requests"
        " after a warm-up of 50, driven in-process (no uvicorn, no sockets of the client's);"
        " instructions the service's process executes per request, in user space (its"
        " drivers and event loop included, the kernel's and the database server's work not).",
        "",
        "| GET /items/{id} | instructions | × the lean app's |",
        "| --- | ---: | ---: |",
    ]
    for case, label in LAYERS.items():
        lines.append(f"| {label} | {layers[case]:,} | {layers[case] / layers['lean']:.2f} |")
    lines += [
        "",
        "What each wing adds to a request of postgresql-async-dependency (the lean app's"
        f" POST /items: {layers['lean-post']:,}):",
        "",
        "| bake | GET /items/{id} | added | POST /items | added |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    plain = bakes["no wings"]
    for bake, counted in bakes.items():
        note = f" ({WING_NOTES[bake]})" if bake in WING_NOTES else ""
        cells = []
        for request in ("get", "post"):
            added = counted[request] - plain[request]
            share = f"{added:+,} ({added / plain[request]:+.0%})" if bake != "no wings" else "—"
            cells += [f"{counted[request]:,}", share]
        lines.append(f"| {bake}{note} | " + " | ".join(cells) + " |")
    keyed = bakes["idempotency_keys"]
    added = keyed["post_keyed"] - keyed["post"]
    lines += [
        "",
        f"A POST with an `Idempotency-Key` (idempotency_keys): {keyed['post_keyed']:,}"
        f" instructions, {added:+,} on one without.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: apt-get install valgrind")
    collector = Collector()
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory(prefix="instructions-") as tmp:
        work = Path(tmp)
        jobs: list[tuple[str, str, Path, dict[str, str]]] = []  # (bake, case, project, env)
        databases = []
        for bake, variant in BAKES.items():
            bench.log(f"baking and installing {variant.id}")
            project = bench.bake_and_install(variant, work)
            database, url = bench.fresh_database(bench.database_name(variant.id), variant, work)
            databases.append(database)
            bench.migrate(project, url)
            bench.seed(bench.Target(variant.id, "", [], project, {}, database))
            env = {
                "DATABASE_URL": url + URL_QUERY.get(bake, ""),
                "ASYNCPG_URL": bench.postgres_url(database),
                "DB_POOL_SIZE": str(bench.POOL_SIZE),
                "DB_MAX_OVERFLOW": "0",
            }
            cases = ["variant", "variant-post"]
            if "idempotency_keys" in variant.wings:
                cases.append("variant-post-keyed")
            if bake == "no wings":
                cases += [case for case in LAYERS if case != "variant"] + ["lean-post"]
            jobs += [(bake, case, project, env) for case in cases]
            if bake == "tracing":
                endpoint = f"http://127.0.0.1:{collector.server_port}"
                exporting = {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}
                jobs += [(EXPORTING, case, project, exporting) for case in cases]

        def counted(job: tuple[str, str, Path, dict[str, str]]) -> int:
            bake, case, project, env = job
            out = work / f"{bench.database_name(bake)}-{case}.callgrind"
            return count(case, args.requests, project, env, out) // args.requests

        with ThreadPoolExecutor(max_workers=2) as pool:
            numbers = list(pool.map(counted, jobs))
        for database in databases:
            bench.drop_database(database)
    layers: dict[str, int] = {}
    order = [
        name for bake in BAKES for name in ([bake, EXPORTING] if bake == "tracing" else [bake])
    ]
    bakes: dict[str, dict[str, int]] = {bake: {} for bake in order}
    kinds = {"variant": "get", "variant-post": "post", "variant-post-keyed": "post_keyed"}
    for (bake, case, _, _), n in zip(jobs, numbers, strict=True):
        bench.log(f"{bake:<18} {case:<22} {n:>12,} instructions per request")
        if case in kinds:
            bakes[bake][kinds[case]] = n
        if bake == "no wings":
            layers[case] = n
    results = {
        "machine": bench.machine(wrk=False),
        "requests": args.requests,
        "layers": layers,
        "bakes": bakes,
    }
    (HERE / "instructions.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (HERE / "instructions.md").write_text(table)
    bench.update_readme(table, "instructions")
    print(table)


if __name__ == "__main__":
    main()
