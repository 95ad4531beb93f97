"""The PostgreSQL variants of the template, each baked with no wing and with every wing,
loaded side by side with the lean tutorial apps and a raw-asyncpg floor.

    python3 tasks.py bench [--rounds N] [--duration SECONDS] [--variants ID,...]
                           [--wings none,every] [--workers 1,2]

--variants takes any of the eight (SQLite's too); --wings which bakes of each.
For each target: a fresh database, migrated and seeded with 1,000 items; one
uvicorn worker (uvloop + httptools, no access log) with DB_POOL_SIZE=10 and no
overflow; wrk with 32 connections on GET /items/{id}, POST /items (unique
names) and GET /items?limit=50. Targets take turns, the order rotating each
round, so drift on the machine hits all alike; one server runs at a time.
Reported: the median requests/s over the rounds, as a ratio to the floor (a
minimal Starlette app over a raw asyncpg pool doing the same SQL), the median
p99 latency, and every non-2xx response and socket error.

Writes benchmarks/results.json, results.md and results.png, and the table into
the README between its benchmark markers.
"""

import argparse
import contextlib
import json
import os
import platform
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from cookiecutter.main import cookiecutter
from psycopg import sql
from uv import find_uv_bin

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.matrix import VARIANTS, Variant, interpreter  # noqa: E402  (the template's table)
from tests.private_postgres import PrivateCluster  # noqa: E402
from tests.readme import update_readme  # noqa: E402

HERE = ROOT / "benchmarks"
UV = find_uv_bin()
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SEED = 1000
CONNECTIONS = 32
POOL_SIZE = 10
ENDPOINTS = {
    "get": "GET /items/{id}",
    "post": "POST /items",
    "list": "GET /items?limit=50",
}
FLOOR = "floor"
# The lean tutorial apps (apps/lean_*.py), served for each database and driver kind
# from the packages of that kind's dependency variant: each variant's anchor.
LEAN_LABEL = {
    "async": "lean tutorial, async: the endpoint commits, refresh after commit",
    "sync": "lean tutorial, sync: plain def endpoints, the endpoint commits",
}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\n{"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, "p50_us": %d, "p99_us": %d, "mean_us": %d}\\n',
    summary.requests, summary.duration, e.status,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(99),
    latency.mean))
end
"""
WRK_SCRIPTS = {
    "get": f'request = function() return wrk.format("GET", "/items/" .. math.random(1, {SEED})) end',
    "list": 'request = function() return wrk.format("GET", "/items?limit=50") end',
    "post": """
local n = 0
request = function()
  n = n + 1
  local body = '{"name": "PREFIX-' .. n .. '", "description": "bench"}'
  return wrk.format("POST", "/items", {["Content-Type"] = "application/json"}, body)
end
""",
}


# A real peer: the project s3rius's fastapi-template generates with PostgreSQL,
# SQLAlchemy and its dummy model, every optional feature off, generated through
# its own generate_project() (it needs Python 3.12+). Its routes differ: it
# creates with PUT /api/dummy/ and has no GET by id.
PEER = "peer-s3rius"
PEER_RELEASE = "6.1.2"
PEER_GENERATE = """
from fastapi_template.__main__ import generate_project
from fastapi_template.input_model import BuilderContext, Database

database = Database(
    name="postgresql", image="postgres:18.3-trixie", async_driver="postgresql+asyncpg",
    driver_short="postgres", driver="postgresql", port=5432,
)
generate_project(BuilderContext(
    project_name="peer", api_type="rest", ci_type="none", db="postgresql",
    db_info=database.model_dump(), orm="sqlalchemy", add_dummy=True, enable_routers=True,
    enable_migrations=False, enable_redis=False, enable_taskiq=False, add_users=False,
    self_hosted_swagger=False, enable_rmq=False, enable_kafka=False, enable_nats=False,
    prometheus_enabled=False, otlp_enabled=False, sentry_enabled=False, enable_loguru=False,
    gunicorn=False, traefik_labels=False, enable_kube=False, force=True,
))
"""
PEER_SCRIPTS = {
    "post": """
local n = 0
request = function()
  n = n + 1
  local body = '{"name": "PREFIX-' .. n .. '"}'
  return wrk.format("PUT", "/api/dummy/", {["Content-Type"] = "application/json"}, body)
end
""",
    "list": 'request = function() return wrk.format("GET", "/api/dummy/?limit=50") end',
}


@dataclass
class Target:
    name: str
    label: str
    command: list[str]
    cwd: Path
    env: dict[str, str]
    database: str  # a PostgreSQL database name, or a SQLite file path
    sqlite: bool = False
    runs: dict[str, list[dict[str, int]]] = field(default_factory=dict)
    # A target with other routes: its own wrk scripts (an endpoint it lacks is skipped),
    # its table, and what it stores of a seeded row.
    scripts: dict[str, str] = field(default_factory=lambda: dict(WRK_SCRIPTS))
    # The long create run: its answers and the rows it left.
    durability: dict[str, int] = field(default_factory=dict)
    table: str = "items"
    seed_columns: tuple[str, ...] = ("name", "description")
    # The PostgreSQL server of its database (a private one for the standby targets).
    server: str = POSTGRES_URL


def log(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    base = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "DATABASE_URL"}}
    result = subprocess.run(
        command, cwd=cwd, env={**base, **(env or {})}, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def postgres_url(database: str, scheme: str = "postgresql", server: str = POSTGRES_URL) -> str:
    return urlsplit(server)._replace(scheme=scheme, path=f"/{database}").geturl()


def recreate_database(name: str) -> None:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(name: str) -> None:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def execute(target: Target, statement: str, rows: list[tuple[str, ...]] | None = None) -> None:
    if target.sqlite:
        with sqlite3.connect(target.database) as connection:
            connection.executemany(statement.replace("%s", "?"), rows or [()])
    else:
        with (
            psycopg.connect(postgres_url(target.database, server=target.server)) as connection,
            connection.cursor() as cursor,
        ):
            if rows:
                cursor.executemany(statement, rows)
            else:
                cursor.execute(statement)


def seed(target: Target) -> None:
    execute(target, f"DELETE FROM {target.table}")
    values = {"name": "seed-{n}", "description": "seeded"}
    columns = target.seed_columns
    rows = [tuple(values[c].format(n=n) for c in columns) for n in range(1, SEED + 1)]
    placeholders = ", ".join(["%s"] * len(columns))
    insert = f"INSERT INTO {target.table} ({', '.join(columns)}) VALUES ({placeholders})"
    execute(target, insert, rows)


def reset(target: Target) -> None:
    """Back to the seeded rows, so every target loads the same table."""
    execute(target, f"DELETE FROM {target.table} WHERE id > {SEED}")


def bake_and_install(variant: Variant, work: Path) -> Path:
    project = Path(
        cookiecutter(
            str(ROOT),
            no_input=True,
            extra_context=variant.context,
            output_dir=str(work / variant.id),
        )
    )
    run(
        [UV, "sync", "--no-dev", "--compile-bytecode", "--quiet", "--python", sys.executable],
        project,
    )
    return project


def migrate(project: Path, database_url: str) -> None:
    run(
        [str(project / ".venv/bin/alembic"), "upgrade", "head"],
        project,
        {"DATABASE_URL": database_url},
    )


def uvicorn(python: Path, app: str, *extra: str) -> list[str]:
    return [
        str(python), "-m", "uvicorn", app, *extra, "--workers", "1", "--loop", "uvloop",
        "--http", "httptools", "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip


def database_name(target: str) -> str:
    """The PostgreSQL database of target ``target``."""
    return "bench_" + target.replace("-", "_").replace("+", "_")


def fresh_database(name: str, variant: Variant, work: Path) -> tuple[str, str]:
    """A new, empty database for target ``name`` on ``variant``'s database and driver:
    its name (PostgreSQL) or file (SQLite), and its SQLAlchemy URL."""
    if variant.database == "sqlite":
        path = work / f"{name}.db"
        return str(path), f"sqlite+{variant.sqlalchemy_driver}:///{path}"
    database = database_name(name)
    recreate_database(database)
    return database, postgres_url(database, f"postgresql+{variant.sqlalchemy_driver}")


def variant_target(variant: Variant, work: Path, env: dict[str, str]) -> Target:
    """The variant baked, installed and migrated onto a fresh database, ready to serve."""
    log(f"baking and installing {variant.id}")
    project = bake_and_install(variant, work)
    database, url = fresh_database(variant.id, variant, work)
    migrate(project, url)
    return Target(
        name=variant.id,
        label=variant.id,
        command=uvicorn(
            project / ".venv/bin/python", "my_service.__main__:worker_app", "--factory"
        ),
        cwd=project,
        env={**env, "DATABASE_URL": url},
        database=database,
        sqlite=variant.database == "sqlite",
    )


def served_with_workers(target: Target, workers: int) -> Target:
    """``target`` as its image serves it, ``python -m my_service``, with ``workers``
    processes (each with its own pool), on a database of its own."""
    name = f"{target.name}-{workers}w"
    if target.sqlite:
        database = str(Path(target.database).with_name(f"{name}.db"))
        url = target.env["DATABASE_URL"].replace(target.database, database)
    else:
        database = database_name(name)
        recreate_database(database)
        url = target.env["DATABASE_URL"].replace(target.database, database)
    migrate(target.cwd, url)
    python = target.cwd / ".venv/bin/python"
    plural = "s" if workers > 1 else ""
    return Target(
        name=name,
        label=f"{target.label}, python -m my_service, {workers} worker{plural}",
        command=[str(python), "-m", "my_service", "--workers", str(workers)],
        cwd=target.cwd,
        # The same logging as the uvicorn targets: warnings only, no access log.
        env={**target.env, "DATABASE_URL": url, "LOG_LEVEL": "WARNING"},
        database=database,
        sqlite=target.sqlite,
    )


def lean_name(database: str, driver: str) -> str:
    return f"lean-{driver}" + ("-sqlite" if database == "sqlite" else "")


def app_target(name: str, label: str, app: str, project: Variant, work: Path) -> Target:
    """``app`` (in apps/) over a fresh database migrated by ``project``'s migrations,
    served by the interpreter and packages of ``project`` (baked and installed)."""
    database, url = fresh_database(name, project, work)
    cwd = work / project.id / "my_service"
    migrate(cwd, url)
    env = {
        "DB_POOL_SIZE": str(POOL_SIZE),
        "DB_MAX_OVERFLOW": "0",
        "ASYNCPG_URL": postgres_url(database),
        "DATABASE_URL": url,
    }
    command = uvicorn(cwd / ".venv/bin/python", app, "--app-dir", str(HERE / "apps"))
    return Target(name, label, command, cwd, env, database, sqlite=project.database == "sqlite")


def build_targets(
    variants: list[Variant], work: Path, workers: list[int], clusters: list[PrivateCluster]
) -> list[Target]:
    """The targets of ``variants`` (each a bake: a variant and its wings) and the references."""
    targets: list[Target] = []
    pool = {"DB_POOL_SIZE": str(POOL_SIZE), "DB_MAX_OVERFLOW": "0"}
    for variant in variants:
        target = variant_target(variant, work, pool)
        if workers:
            targets += [served_with_workers(target, n) for n in workers]
            if not target.sqlite:
                drop_database(target.database)
        else:
            targets.append(target)
    baked = {variant.id for variant in variants}

    def project(database: str, driver: str) -> Variant:
        """The dependency variant of ``database`` and ``driver``, baked once."""
        variant = Variant(database, driver, "dependency")
        if variant.id not in baked:
            bake_and_install(variant, work)
            baked.add(variant.id)
        return variant

    asyncpg = project("postgresql", "async")
    references = [
        app_target(FLOOR, "floor: Starlette + raw asyncpg pool", "floor:app", asyncpg, work)
    ]
    if not workers:  # with workers the question is how a variant scales: the floor says it
        references += [
            app_target("fastapi-raw", "FastAPI + raw asyncpg pool (no ORM)", "fastapi_raw:app", asyncpg, work),
            app_target("tutorial-dependency", "tutorial: yield dependency, commit after response", "tutorial:app", asyncpg, work),
            app_target("tutorial-middleware", "tutorial: BaseHTTPMiddleware session", "tutorial:app", asyncpg, work),
        ]  # fmt: skip
        references[-1].env["SESSION"] = "middleware"
        for database, driver in sorted({(v.database, v.driver) for v in variants}):
            name = lean_name(database, driver)
            label = f"{LEAN_LABEL[driver]} ({database})"
            app = f"lean_{driver}:app"
            references.append(app_target(name, label, app, project(database, driver), work))
    targets = references + targets
    standby = next((v for v in variants if v.id == STANDBY_VARIANT), None)
    if not workers and standby is not None:
        targets += standby_targets(standby, work, clusters)
    peer = None if workers else peer_target(work)
    if peer is not None:
        targets.append(peer)
    return sorted(targets, key=lambda t: (t.sqlite, t.name != FLOOR))


# Reads on a hot standby, beside the same bake reading from its primary: both on a
# private primary (and its standby) of tests/private_postgres.py, alike but for the
# standby's URL. Standbys are the read_replicas wing's.
STANDBY_VARIANT = "postgresql-async-dependency+every-wing"
# A database each, as every target has: seeding one must not renumber the other's rows.
STANDBY_DATABASES = {"primary-reads": "bench_primary_reads", "standby-reads": "bench_standby_reads"}


def standby_targets(variant: Variant, work: Path, clusters: list[PrivateCluster]) -> list[Target]:
    """``variant`` (baked already) served twice by a private primary: reading from it, and
    reading from its hot standby; the clusters go to ``clusters``, to remove."""
    try:
        primary = PrivateCluster()
    except (OSError, subprocess.CalledProcessError, AssertionError) as error:
        log(f"SKIPPING THE STANDBY TARGETS: no private PostgreSQL cluster here ({error})")
        return []
    clusters.append(primary)
    primary.start()
    scheme = f"postgresql+{variant.sqlalchemy_driver}"
    project = work / variant.id / "my_service"
    for database in STANDBY_DATABASES.values():
        primary.create_database(database)
        migrate(project, primary.url(database, scheme))
    standby = primary.standby()
    clusters.append(standby)
    command = uvicorn(project / ".venv/bin/python", "my_service.__main__:worker_app", "--factory")
    targets = []
    for reads, database in STANDBY_DATABASES.items():
        env = {
            "DB_POOL_SIZE": str(POOL_SIZE),
            "DB_MAX_OVERFLOW": "0",
            "DATABASE_URL": primary.url(database, scheme),
        }
        label = f"{variant.id} on a private primary, reading there"
        if reads == "standby-reads":
            env["DATABASE_REPLICA_URLS"] = standby.url(database, scheme)
            label = f"{variant.id} on a private primary, reading from its hot standby"
        name = f"{variant.id}-{reads}"
        targets.append(Target(name, label, command, project, env, database, server=primary.url()))
    return targets


def remove_all(clusters: list[PrivateCluster]) -> None:
    for cluster in clusters:
        cluster.remove()


def transactions_on(cluster: PrivateCluster) -> int:
    """Transactions the standby-reads target's database has run on ``cluster`` (a standby
    counts its own)."""
    database = STANDBY_DATABASES["standby-reads"]
    query = "SELECT xact_commit FROM pg_stat_database WHERE datname = %s"
    with psycopg.connect(cluster.url(database)) as connection:
        row = connection.execute(query, (database,)).fetchone()
        return int(row[0]) if row else 0


def peer_target(work: Path) -> Target | None:
    """The peer (see PEER), generated, installed by its own hook, its table created."""
    python = interpreter("3.12") or interpreter("3.13")
    if python is None:
        log("SKIPPING THE PEER: fastapi-template needs Python 3.12+, and none was found")
        return None
    log(f"generating the peer with fastapi-template {PEER_RELEASE}")
    generator = work / "peer-generator"
    run([UV, "venv", "--quiet", "--python", python, str(generator)], work)
    package = f"fastapi-template=={PEER_RELEASE}"
    run([UV, "pip", "install", "--quiet", "--python", str(generator / "bin/python"), package], work)
    output = work / "peer-output"
    output.mkdir()
    # Its post-generation hook installs the project with `uv sync` and commits it to git.
    path = f"{Path(UV).parent}{os.pathsep}{os.environ['PATH']}"
    hook_env = {"PATH": path, "UV_PYTHON": python, "GIT_AUTHOR_NAME": "bench",
                "GIT_AUTHOR_EMAIL": "bench@example.com", "GIT_COMMITTER_NAME": "bench",
                "GIT_COMMITTER_EMAIL": "bench@example.com"}  # fmt: skip
    run([str(generator / "bin/python"), "-c", PEER_GENERATE], output, hook_env)
    project = output / "peer"
    database = database_name(PEER)
    recreate_database(database)
    server = urlsplit(POSTGRES_URL)
    env = {
        "PEER_DB_HOST": server.hostname or "127.0.0.1",
        "PEER_DB_PORT": str(server.port or 5432),
        "PEER_DB_USER": server.username or "postgres",
        "PEER_DB_PASS": server.password or "",
        "PEER_DB_BASE": database,
    }
    peer_python = project / ".venv/bin/python"
    # It creates its tables when it starts (create_all); now, so they can be seeded.
    create = "import asyncio; from peer.web.lifespan import _create_tables as c; asyncio.run(c())"
    run([str(peer_python), "-c", create], project, env)
    version = run(
        [str(peer_python), "-c", "import platform; print(platform.python_version())"], project
    )
    return Target(
        name=PEER,
        label=f"s3rius/fastapi-template {PEER_RELEASE}: PostgreSQL, SQLAlchemy (Python {version.strip()})",
        command=uvicorn(peer_python, "peer.web.application:get_app", "--factory"),
        cwd=project,
        env=env,
        database=database,
        scripts=dict(PEER_SCRIPTS),
        table="dummy_model",
        seed_columns=("name",),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(target: Target, port: int) -> subprocess.Popen[bytes]:
    command = [*target.command, "--port", str(port)]
    server = subprocess.Popen(command, cwd=target.cwd, env={**os.environ, **target.env})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"{target.name} exited while starting")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit(f"{target.name} did not start")


def wrk(
    port: int,
    endpoint: str,
    duration: float,
    scripts: Path,
    connections: int = CONNECTIONS,
    prefix: str = "",
    request: str = "",
    timeout: float = 5,
) -> dict[str, int]:
    """One wrk run of ``request`` (default: the endpoint's script); creates are named
    ``<prefix>-<n>``."""
    script = scripts / f"{endpoint}.lua"
    request = request or WRK_SCRIPTS[endpoint]
    text = request.replace("PREFIX", prefix or uuid.uuid4().hex[:12]) + WRK_REPORT
    script.write_text(text)
    output = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--timeout", f"{timeout:g}s", "-s", str(script),
         f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    result: dict[str, int] = json.loads(output.strip().splitlines()[-1])
    return result


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` and all its descendants (its workers)."""
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rpartition(")")[2].split()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
        pending += map(int, children)
    return total


def committed_rows(target: Target, prefix: str) -> int:
    """Rows a POST run's 2xx answers promised, as the database has them now."""
    query = f"SELECT count(*) FROM {target.table} WHERE name LIKE '{prefix}-%'"
    if target.sqlite:
        with sqlite3.connect(target.database) as connection:
            return int(connection.execute(query).fetchone()[0])
    with psycopg.connect(postgres_url(target.database, server=target.server)) as connection:
        row = connection.execute(query.replace("%", "%%")).fetchone()
        return int(row[0]) if row else 0


def load(target: Target, duration: float, scripts: Path) -> None:
    port = free_port()
    server = start(target, port)
    posts: tuple[str, dict[str, int]] | None = None
    try:
        endpoints = [endpoint for endpoint in ENDPOINTS if endpoint in target.scripts]
        # Warm up: connections, statement caches.
        wrk(port, endpoints[0], 1, scripts, request=target.scripts[endpoints[0]])
        for endpoint in endpoints:
            prefix = uuid.uuid4().hex[:12]
            cpu = cpu_seconds(server.pid)
            request = target.scripts[endpoint]
            result = wrk(port, endpoint, duration, scripts, prefix=prefix, request=request)
            result["cpu_us"] = round((cpu_seconds(server.pid) - cpu) / result["requests"] * 1e6)
            if endpoint == "post":
                result["acknowledged"] = result["requests"] - result["non_2xx"]
                posts = (prefix, result)
            target.runs.setdefault(endpoint, []).append(result)
            rps = result["requests"] / (result["duration_us"] / 1e6)
            log(
                f"  {target.name:<30} {endpoint:<5} {rps:8.0f} req/s"
                f"  p99 {result['p99_us'] / 1000:.1f} ms = {result['p99_us'] / result['mean_us']:.1f} × mean"
                f"  {result['cpu_us']} µs CPU/request"
            )
    finally:
        server.terminate()
        server.wait(timeout=30)
        # Counted once the server stopped: what it still committed after answering counts.
        if posts is not None:
            prefix, result = posts
            result["committed"] = committed_rows(target, prefix)
        reset(target)


# The long create run: the targets that answer a create before, or after, committing it.
DURABILITY = (PEER, "tutorial-dependency", "postgresql-async-dependency")


def create_for_long(target: Target, seconds: float, scripts: Path) -> None:
    """Creates for ``seconds``, long enough for a queue to outgrow a pool timeout; then
    the 2xx answers against the rows in the table, once the server stopped."""
    port = free_port()
    server = start(target, port)
    prefix = uuid.uuid4().hex[:12]
    try:
        # A client that waits as long as it takes: a slow answer is still an answer.
        request = target.scripts["post"]
        result = wrk(port, "post", seconds, scripts, prefix=prefix, request=request, timeout=120)
    finally:
        server.terminate()
        server.wait(timeout=60)
    committed = committed_rows(target, prefix)
    reset(target)
    acknowledged = result["requests"] - result["non_2xx"]
    target.durability = {
        "seconds": round(seconds),
        "acknowledged": acknowledged,
        "committed": committed,
        "non_2xx": result["non_2xx"],
        "socket_errors": result["socket_errors"],
    }
    log(
        f"  {target.name:<30} {seconds:g} s of creates: {acknowledged} acknowledged, {committed} committed"
    )


def summarize(target: Target, endpoint: str) -> dict[str, float]:
    runs = target.runs[endpoint]
    return {
        "rps": statistics.median(r["requests"] / (r["duration_us"] / 1e6) for r in runs),
        "p99_ms": statistics.median(r["p99_us"] for r in runs) / 1000,
        "p99_over_mean": statistics.median(r["p99_us"] / r["mean_us"] for r in runs),
        "cpu_us": statistics.median(r["cpu_us"] for r in runs),
        "non_2xx": sum(r["non_2xx"] for r in runs),
        "socket_errors": sum(r["socket_errors"] for r in runs),
        "acknowledged": sum(r.get("acknowledged", 0) for r in runs),
        "committed": sum(r.get("committed", 0) for r in runs),
    }


def machine(wrk: bool = True) -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    memory = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    with psycopg.connect(POSTGRES_URL) as connection:
        server = connection.execute("SHOW server_version").fetchone()
    return (
        f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB; Python {platform.python_version()}, "
        f"PostgreSQL {server[0] if server else '?'} on the same machine"
        + (", wrk 4.1 with 1 thread" if wrk else "")
    )


def report(
    targets: list[Target], variants: list[Variant], rounds: int, duration: float
) -> dict[str, Any]:
    floor = next((t for t in targets if t.name == FLOOR), None)
    sqlite_base = next((t for t in targets if t.name == "sqlite-async-dependency"), None)
    by_name = {target.name: target for target in targets}
    bakes = {variant.id: variant for variant in variants}
    rows = []
    for target in targets:
        base = sqlite_base if target.sqlite else floor
        variant = bakes.get(target.name)
        lean = by_name.get(lean_name(variant.database, variant.driver)) if variant else None
        row: dict[str, Any] = {
            "target": target.name,
            "label": target.label,
            "sqlite": target.sqlite,
            "durability": target.durability,
        }
        for endpoint in target.runs:
            numbers = summarize(target, endpoint)
            if base is not None:
                numbers["ratio"] = numbers["rps"] / summarize(base, endpoint)["rps"]
                numbers["p99_ratio"] = numbers["p99_ms"] / summarize(base, endpoint)["p99_ms"]
            if lean is not None and endpoint in lean.runs:
                numbers["lean_ratio"] = numbers["rps"] / summarize(lean, endpoint)["rps"]
            row[endpoint] = numbers
        rows.append(row)
    return {
        "machine": machine(),
        "rounds": rounds,
        "duration_s": duration,
        "connections": CONNECTIONS,
        "pool_size": POOL_SIZE,
        "rows": rows,
    }


def markdown(results: dict[str, Any]) -> str:
    head = "| target | " + " | ".join(f"{label} req/s (×)" for label in ENDPOINTS.values())
    head += " | × lean get / post / list"
    head += " | p99 ÷ mean get / post / list | CPU µs per request get / post / list"
    head += " | POSTs acknowledged / committed | non-2xx | socket errors |"
    lines = [
        f"Machine: {results['machine']}. {results['rounds']} rounds of {results['duration_s']:g} s "
        f"per endpoint, {results['connections']} connections, DB_POOL_SIZE={results['pool_size']} "
        "(no overflow); medians over the rounds.",
        "",
        "PostgreSQL targets: × is the ratio to the floor. SQLite variants: × is the ratio to "
        "sqlite-async-dependency. × lean: a variant's throughput over the lean tutorial app's "
        "of its database and driver kind (async or sync), served by the same packages. "
        "p99 ÷ mean: the 99th percentile latency over the mean one. "
        "CPU µs per request: the server's processes, from /proc. Acknowledged: 2xx answers to "
        "POST /items; committed: their rows in the table once the server stopped.",
        "",
        head,
        "|" + " --- |" * (len(ENDPOINTS) + 7),
    ]
    for row in results["rows"]:
        cells = []
        for endpoint in ENDPOINTS:
            n = row.get(endpoint)
            if n is None:  # the target has no such route
                cells.append("—")
                continue
            ratio = f" ({n['ratio']:.2f}×)" if "ratio" in n else ""
            cells.append(f"{n['rps']:,.0f}{ratio}")
        measured = [row[e] for e in ENDPOINTS if e in row]
        leans = [row[e].get("lean_ratio") if e in row else None for e in ENDPOINTS]
        lean = " / ".join(f"{x:.2f}" for x in leans) if None not in leans else "—"
        tail = " / ".join(f"{row[e]['p99_over_mean']:.1f}" if e in row else "—" for e in ENDPOINTS)
        cpu = " / ".join(f"{row[e]['cpu_us']:,.0f}" if e in row else "—" for e in ENDPOINTS)
        writes = f"{row['post']['acknowledged']:,} / {row['post']['committed']:,}"
        non_2xx = sum(n["non_2xx"] for n in measured)
        errors = sum(n["socket_errors"] for n in measured)
        lines.append(
            f"| {row['target']} | " + " | ".join(cells)
            + f" | {lean} | {tail} | {cpu} | {writes} | {non_2xx} | {errors} |"
        )  # fmt: skip
    if "standby_transactions" in results:
        ran = results["standby_transactions"]
        lines += [
            "",
            f"{STANDBY_VARIANT}-primary-reads and -standby-reads: the same service on a private "
            "primary on this machine, reading there or (with DATABASE_REPLICA_URLS) from its hot "
            "standby, on the same machine too. During the run the standby-reads target's "
            f"database ran {ran['standby']:,} transactions on the standby (its reads) and "
            f"{ran['primary']:,} on the primary.",
        ]
    long_runs = [row for row in results["rows"] if row["durability"]]
    if long_runs:
        seconds = long_runs[0]["durability"]["seconds"]
        lines += [
            "",
            f"A long create run, {seconds} s of POST /items (the peer: PUT /api/dummy/) at "
            f"{results['connections']} connections: every 2xx answer is a promise; lost are "
            "acknowledged creates missing from the table once the server stopped; up to "
            f"{results['connections']} rows more than acknowledged are the creates in flight "
            "when wrk stopped.",
            "",
            "| target | acknowledged | committed | lost | non-2xx | socket errors |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for row in long_runs:
            d = row["durability"]
            lost = max(0, d["acknowledged"] - d["committed"])
            share = f" ({lost / d['acknowledged']:.0%})" if lost and d["acknowledged"] else ""
            lines.append(
                f"| {row['target']} | {d['acknowledged']:,} | {d['committed']:,} | {lost:,}{share}"
                f" | {d['non_2xx']:,} | {d['socket_errors']:,} |"
            )
    return "\n".join(lines) + "\n"


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [
        ("PostgreSQL: throughput / floor", [r for r in results["rows"] if not r["sqlite"]]),
        (
            "SQLite: throughput / sqlite-async-dependency",
            [r for r in results["rows"] if r["sqlite"]],
        ),
    ]
    groups = [(title, rows) for title, rows in groups if rows]
    figure, axes = plt.subplots(len(groups), 1, figsize=(11, 4.2 * len(groups)), squeeze=False)
    width = 0.8 / len(ENDPOINTS)
    for axis, (title, rows) in zip(axes[:, 0], groups, strict=True):
        for i, (endpoint, label) in enumerate(ENDPOINTS.items()):
            values = [row.get(endpoint, {}).get("ratio", 0) for row in rows]
            axis.bar([x + i * width for x in range(len(rows))], values, width, label=label)
        axis.set_xticks([x + width for x in range(len(rows))])
        axis.set_xticklabels([row["target"] for row in rows], rotation=25, ha="right", fontsize=8)
        axis.axhline(0.5, color="grey", linestyle="--", linewidth=0.8)
        axis.set_title(title)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--long-creates",
        type=int,
        default=90,
        help="whole seconds of the long create run of " + ", ".join(DURABILITY) + " (0: none)",
    )
    parser.add_argument(
        "--duration", type=int, default=4, help="whole seconds (wrk's unit) per endpoint and round"
    )
    postgresql = [v.id for v in VARIANTS if v.database == "postgresql"]
    parser.add_argument("--variants", default=",".join(postgresql))
    parser.add_argument(
        "--wings", default="none,every", help="the bakes of each variant: none, every (wing)"
    )
    parser.add_argument(
        "--workers",
        default="",
        help="serve each variant (with the workers wing, and no other) as its image does,"
        " once per worker count (1,2); writes benchmarks/workers.{md,json} instead",
    )
    args = parser.parse_args()
    workers = [int(n) for n in args.workers.split(",") if n]
    if shutil.which("wrk") is None:
        raise SystemExit(
            "wrk is not installed: apt-get install wrk (Debian/Ubuntu) or brew install wrk"
        )
    wanted = args.variants.split(",")
    wings = {"none": lambda v: v, "every": lambda v: v.with_wings(v.possible_wings)}
    variants = [wings[w](v) for v in VARIANTS if v.id in wanted for w in args.wings.split(",")]
    if workers:
        variants = [v.with_wings(["workers"]) for v in VARIANTS if v.id in wanted]
    clusters: list[PrivateCluster] = []
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, contextlib.ExitStack() as stack:
        stack.callback(remove_all, clusters)
        work = Path(tmp)
        targets = build_targets(variants, work, workers, clusters)
        before = [transactions_on(cluster) for cluster in clusters]
        for target in targets:
            seed(target)
        for round_number in range(args.rounds):
            log(f"round {round_number + 1} of {args.rounds}")
            shift = round_number % len(targets)
            for target in targets[shift:] + targets[:shift]:
                load(target, args.duration, work)
        if args.long_creates and not workers:
            log(f"long create run: {args.long_creates:g} s each")
            for target in targets:
                if target.name in DURABILITY:
                    create_for_long(target, args.long_creates, work)
        results = report(targets, variants, args.rounds, args.duration)
        if clusters:
            # Where the standby target's reads went: the standby's own count of them.
            ran = [
                transactions_on(cluster) - n for cluster, n in zip(clusters, before, strict=True)
            ]
            results["standby_transactions"] = {"primary": ran[0], "standby": ran[1]}
        for target in targets:
            if not target.sqlite and target.server == POSTGRES_URL:
                drop_database(target.database)
    table = markdown(results)
    if workers:
        (HERE / "workers.json").write_text(json.dumps(results, indent=2) + "\n")
        (HERE / "workers.md").write_text(table)
    else:
        (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        (HERE / "results.md").write_text(table)
        chart(results, HERE / "results.png")
        update_readme(table, "benchmark")
    print(table)


if __name__ == "__main__":
    main()
