"""What a request costs as the table grows: the variants beside the tutorial app.

    python3 tasks.py scale [--rows 1000,100000,1000000,10000000] [--sqlite-rows 1000,...]
                           [--rounds N] [--duration SECONDS] [--variants ID,...]

For each engine and size, one database is migrated and seeded once and shared
by that engine's targets: on PostgreSQL one ``INSERT ... SELECT`` from
``generate_series`` and ``VACUUM ANALYZE``, on SQLite one transaction. Each
target is then served alone on each size, as ``run.py`` serves it (one uvicorn
worker, DB_POOL_SIZE=10), and wrk (32 connections) measures four requests:
``GET /items/{id}`` (ids drawn across the whole table), ``POST /items``, the
first page (``GET /items?limit=50``) and a page deep in the table: the one
after the row ``rows - 100``, by ``?after=`` as the project's own ``paging.py``
links it, and by ``?offset=rows-100`` for the tutorial app, which pages
by offset and counts the table on every page, as tutorials do.

Every (target, size) pair is measured once per round, the order rotating each
round, so the machine's drift hits every size alike; reported are the medians
over the rounds of the median and 99th-percentile latency and of the server
CPU per request, and each median latency as a multiple of the same target's
at the smallest size. Writes benchmarks/scale.json, scale.md and scale.png
(log-log), and the tables into the README between its scale markers.
"""

import argparse
import dataclasses
import json
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import psycopg

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run as bench  # noqa: E402  (the benchmark's targets, servers and wrk)
from run import Variant  # noqa: E402

SIZES = "1000,100000,1000000,10000000"
SQLITE_SIZES = "1000,100000,1000000"
TUTORIAL = "tutorial-dependency"
REQUESTS = {
    "get": "GET /items/{id}",
    "post": "POST /items",
    "first": "first page",
    "deep": "deep page",
}
# The page after this many rows from the end.
DEPTH = 100
# Seconds wrk waits for an answer.
TIMEOUT = 30


def seed(target: bench.Target, rows: int) -> None:
    """Exactly ``rows`` items, ids 1 to ``rows``, and the planner's statistics."""
    if target.sqlite:
        with sqlite3.connect(target.database) as connection:
            connection.execute("DELETE FROM items")
            connection.execute("DELETE FROM sqlite_sequence WHERE name = 'items'")
            connection.executemany(
                "INSERT INTO items (id, name, description, version) VALUES (?, ?, 'seeded', 1)",
                ((n, f"seed-{n}") for n in range(1, rows + 1)),
            )
        with sqlite3.connect(target.database) as connection:
            connection.execute("ANALYZE")
        return
    with psycopg.connect(bench.postgres_url(target.database), autocommit=True) as connection:
        connection.execute("TRUNCATE items, item_events, idempotency_keys RESTART IDENTITY")
        connection.execute(
            "INSERT INTO items (name, description, version)"
            " SELECT 'seed-' || n, 'seeded', 1 FROM generate_series(1, %s) AS n",
            (rows,),
        )
        connection.execute("VACUUM ANALYZE items")


def forget_creates(target: bench.Target, rows: int) -> None:
    bench.execute(target, f"DELETE FROM items WHERE id > {rows}")


def deep_page(target: bench.Target, rows: int) -> str:
    """The path of the page after the row ``rows - DEPTH``."""
    after = rows - DEPTH
    if target.name == TUTORIAL:
        return f"/items?limit=50&offset={after}"
    return f"/items?limit=50&after={after}"


def scripts(target: bench.Target, rows: int) -> dict[str, str]:
    deep = deep_page(target, rows)
    return {
        "get": f'request = function() return wrk.format("GET", "/items/" .. math.random(1, {rows})) end',
        "post": bench.WRK_SCRIPTS["post"],
        "first": 'request = function() return wrk.format("GET", "/items?limit=50") end',
        "deep": f'request = function() return wrk.format("GET", "{deep}") end',
    }


def alone(port: int, request: str) -> dict[str, Any]:
    """One request of the script's (a list page, whose path it names), alone, timed
    from the client."""
    (path,) = re.findall(r'"GET", "([^"]+)"', request)
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=600) as answer:
            answer.read()
            status = answer.status
    except urllib.error.HTTPError as error:
        status = error.code
    took = round((time.perf_counter() - started) * 1e6)
    return {
        "requests": 1, "duration_us": took, "non_2xx": int(status >= 300), "socket_errors": 0,
        "p50_us": took, "p99_us": took, "mean_us": took, "cpu_us": 0, "alone": True,
    }  # fmt: skip


def stop(server: subprocess.Popen[bytes]) -> None:
    """Stop the server; kill it if requests it cannot finish keep it waiting."""
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=10)


def measure(target: bench.Target, rows: int, duration: float, work: Path) -> dict[str, Any]:
    port = bench.free_port()
    requests = scripts(target, rows)
    server = bench.start(target, port)
    measured: dict[str, Any] = {}
    try:
        bench.wrk(port, "get", 1, work, request=requests["get"])  # warm up
        for name, request in requests.items():
            cpu = bench.cpu_seconds(server.pid)
            prefix = uuid.uuid4().hex[:12]
            result = bench.wrk(
                port, name, duration, work, prefix=prefix, request=request, timeout=TIMEOUT
            )
            if result["requests"] == 0:
                # Not one answer within the run: what one request takes alone, on a server
                # of its own (this one's pool is still busy with the abandoned requests).
                stop(server)
                server = bench.start(target, port)
                result = alone(port, request)
            else:
                spent = bench.cpu_seconds(server.pid) - cpu
                result["cpu_us"] = round(spent / result["requests"] * 1e6)
            measured[name] = result
            bench.log(
                f"  {rows:>10,} rows  {target.name:<28} {name:<5}"
                f" p50 {result['p50_us'] / 1000:7.2f} ms  p99 {result['p99_us'] / 1000:7.2f} ms"
                f"  {result['cpu_us']:>6} µs CPU  non-2xx {result['non_2xx']}"
                + ("  (no answer within the run: one request alone)" if result.get("alone") else "")
            )
    finally:
        stop(server)
        forget_creates(target, rows)
    return measured


def build_targets(variants: list[Variant], work: Path) -> list[bench.Target]:
    """The variants, and the tutorial app (served from a PostgreSQL variant's packages)."""
    pool = {"DB_POOL_SIZE": str(bench.POOL_SIZE), "DB_MAX_OVERFLOW": "0"}
    targets = [bench.variant_target(variant, work, pool) for variant in variants]
    reference = next((t.cwd for t in targets if t.name == "postgresql-async-dependency"), None)
    if reference is None:
        reference = bench.bake_and_install(bench.VARIANTS[4], work)  # postgresql-async-dependency
    database = "bench_scale_tutorial"
    bench.recreate_database(database)
    url = bench.postgres_url(database, "postgresql+asyncpg")
    bench.migrate(reference, url)
    python = reference / ".venv/bin/python"
    command = bench.uvicorn(python, "tutorial:app", "--app-dir", str(HERE / "apps"))
    env = {**pool, "DATABASE_URL": url}
    label = "tutorial: yield dependency, offset and count"
    targets.append(bench.Target(TUTORIAL, label, command, reference, env, database))
    return targets


def databases(
    targets: list[bench.Target], sizes: dict[bool, list[int]], work: Path
) -> dict[tuple[bool, int], str]:
    """For each engine and size, a database (name or file) migrated by that engine's
    first target's project and seeded: shared by all that engine's targets."""
    made: dict[tuple[bool, int], str] = {}
    for sqlite in (False, True):
        engine = [t for t in targets if t.sqlite == sqlite]
        for size in sizes[sqlite] if engine else []:
            bench.log(f"seeding {size:,} rows ({'SQLite' if sqlite else 'PostgreSQL'})")
            if sqlite:
                database = str(work / f"scale-{size}.db")
            else:
                database = f"bench_scale_{size}"
                bench.recreate_database(database)
            owner = at(engine[0], database)
            bench.migrate(owner.cwd, owner.env["DATABASE_URL"])
            seed(owner, size)
            made[sqlite, size] = database
    return made


def at(target: bench.Target, database: str) -> bench.Target:
    """``target`` served on ``database`` instead of its own."""
    env = {key: value.replace(target.database, database) for key, value in target.env.items()}
    return dataclasses.replace(target, env=env, database=database, runs={})


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One request's measurements over the rounds: the median of each."""
    return {
        "p50_ms": statistics.median(m["p50_us"] for m in runs) / 1000,
        "p99_ms": statistics.median(m["p99_us"] for m in runs) / 1000,
        "cpu_us": round(statistics.median(m["cpu_us"] for m in runs)),
        "rps": statistics.median(m["requests"] / (m["duration_us"] / 1e6) for m in runs),
        "non_2xx": sum(m["non_2xx"] + m["socket_errors"] for m in runs),
        "alone": any(m.get("alone", False) for m in runs),
        "rounds": [m["p50_us"] / 1000 for m in runs],
    }


# How much a request's median latency may grow from the smallest size to the largest.
BOUNDS = {"first": 1.5, "deep": 1.5, "get": 1.2, "post": 1.2}


def bounds(results: dict[str, Any]) -> list[str]:
    """The variants at their engine's largest size against ``BOUNDS``."""
    lines = [
        "**At the largest size, against the bounds** (× the median latency at the smallest"
        " size; first and deep page ≤ 1.5×, get and create ≤ 1.2×)",
        "",
        "| target | rows | " + " | ".join(REQUESTS[name] for name in BOUNDS) + " |",
        "| --- | ---: |" + " --- |" * len(BOUNDS),
    ]
    held = cells = 0
    for target in sorted({row["target"] for row in results["rows"]} - {TUTORIAL}):
        row = max((r for r in results["rows"] if r["target"] == target), key=lambda r: r["rows"])
        marks = []
        for name, bound in BOUNDS.items():
            growth = row[name]["growth"]
            ok = growth <= bound and not row[name]["non_2xx"]
            held += ok
            cells += 1
            marks.append(f"×{growth:.2f} {'within' if ok else '**over**'}")
        lines.append(f"| {target} | {row['rows']:,} | " + " | ".join(marks) + " |")
    return [*lines, "", f"{held} of {cells} within their bounds.", ""]


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"Machine: {results['machine']}. wrk, 32 connections, {results['duration']:g} s per"
        f" request, size and round, {results['rounds']} rounds in rotating order; one uvicorn"
        " worker per target. Medians over the rounds: median latency in ms (× its value at the"
        " smallest size), then p99 ms and server CPU µs per request.",
        "",
        *bounds(results),
    ]
    for name, title in REQUESTS.items():
        targets = sorted({row["target"] for row in results["rows"]})
        lines += [f"**{title}**", "", "| rows | " + " | ".join(targets) + " |"]
        lines.append("| ---: |" + " --- |" * len(targets))
        sizes = sorted({row["rows"] for row in results["rows"]})
        for size in sizes:
            cells = []
            for target in targets:
                row = next(
                    (r for r in results["rows"] if r["target"] == target and r["rows"] == size),
                    None,
                )
                if row is None:
                    cells.append("—")
                    continue
                m = row[name]
                if m["alone"]:
                    took = m["p50_ms"] / 1000
                    cells.append(f"none answered in {results['duration']:g} s; alone {took:.1f} s")
                    continue
                cells.append(
                    f"{m['p50_ms']:.2f} (×{m['growth']:.2f}), p99 {m['p99_ms']:.1f}, {m['cpu_us']} µs"
                    + (f", {m['non_2xx']} non-2xx" if m["non_2xx"] else "")
                )
            lines.append(f"| {size:,} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    targets = sorted({row["target"] for row in results["rows"]})
    for axis, (name, title) in zip(axes.flat, REQUESTS.items(), strict=True):
        for target in targets:
            rows = sorted(
                (r for r in results["rows"] if r["target"] == target), key=lambda r: r["rows"]
            )
            axis.plot(
                [r["rows"] for r in rows],
                [r[name]["p50_ms"] for r in rows],
                marker="o",
                label=target,
                linestyle="--" if target == TUTORIAL else "-",
            )
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("rows in the table")
        axis.set_ylabel("median latency, ms (32 connections)")
        axis.set_title(title)
    axes.flat[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", default=SIZES, help="PostgreSQL sizes (default: %(default)s)")
    parser.add_argument("--sqlite-rows", default=SQLITE_SIZES, help="default: %(default)s")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--duration", type=int, default=3, help="whole seconds (wrk's unit) per request and round"
    )
    parser.add_argument("--variants", default=",".join(v.id for v in bench.VARIANTS))
    args = parser.parse_args()
    sizes = {False: [int(n) for n in args.rows.split(",")]}
    sizes[True] = [int(n) for n in args.sqlite_rows.split(",")]
    wanted = args.variants.split(",")
    variants = [v for v in bench.VARIANTS if v.id in wanted]
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="scale-") as tmp:
        work = Path(tmp)
        targets = build_targets(variants, work)
        made = databases(targets, sizes, work)
        pairs = [(t, size) for t in targets for size in sizes[t.sqlite]]
        for number in range(args.rounds):
            bench.log(f"round {number + 1} of {args.rounds}")
            shift = number * len(pairs) // args.rounds
            for target, size in pairs[shift:] + pairs[:shift]:
                measured = measure(at(target, made[target.sqlite, size]), size, args.duration, work)
                for name, m in measured.items():
                    runs.setdefault((target.name, size), []).append({"request": name, **m})
        for target in targets:
            if not target.sqlite:
                bench.drop_database(target.database)
        for (sqlite, _), database in made.items():
            if not sqlite:
                bench.drop_database(database)
    rows: list[dict[str, Any]] = [
        {
            "target": name,
            "rows": size,
            **{
                request: median_of([m for m in measured if m["request"] == request])
                for request in REQUESTS
            },
        }
        for (name, size), measured in runs.items()
    ]
    for row in rows:
        smallest = min((r for r in rows if r["target"] == row["target"]), key=lambda r: r["rows"])
        for name in REQUESTS:
            row[name]["growth"] = row[name]["p50_ms"] / smallest[name]["p50_ms"]
    results = {
        "machine": bench.machine(),
        "duration": args.duration,
        "rounds": args.rounds,
        "rows": rows,
    }
    (HERE / "scale.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (HERE / "scale.md").write_text(table)
    chart(results, HERE / "scale.png")
    bench.update_readme(table, "scale")
    print(table)
    medians = statistics.median(r["get"]["p50_ms"] for r in rows) if rows else 0
    bench.log(f"done: {len(rows)} measurements, median GET p50 {medians:.2f} ms")


if __name__ == "__main__":
    main()
