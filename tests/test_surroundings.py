"""What surrounds the code in each variant: Docker, compose, CI workflow, task runner, license.

No Docker engine runs here, so images and compose files are validated by
parsing them and asserting what they must say.
"""

import ast
import json
import re
import shutil
import subprocess
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml
from pytest_cookies.plugin import Cookies

from .conftest import bake
from .matrix import COOKIECUTTER, VARIANTS, Variant, bakes_checked

PACKAGE = "my_service"
# The uv release line that writes the template's locks (the template's own uv).
UV_MINOR = tuple(int(part) for part in version("uv").split(".")[:2])


@pytest.fixture(
    scope="module", params=[b for v in VARIANTS for b in bakes_checked(v)], ids=lambda v: v.id
)
def baked(request: pytest.FixtureRequest, cookies_session: Cookies) -> tuple[Variant, Path]:
    variant: Variant = request.param
    return variant, bake(cookies_session, **variant.context)


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", text)
    pairs = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, arguments = line.partition(" ")
            pairs.append((instruction.upper(), arguments.strip()))
    return pairs


def test_dockerfile(baked: tuple[Variant, Path]) -> None:
    variant, project = baked
    steps = dockerfile_instructions((project / "Dockerfile").read_text())
    instructions = [instruction for instruction, _ in steps]
    arguments = dict(reversed(steps))  # the first occurrence of each instruction

    assert ("ARG", "PYTHON_VERSION=3.11") in steps
    stages = [args for instruction, args in steps if instruction == "FROM"]
    assert stages == [
        "python:${PYTHON_VERSION}-slim AS build",
        "python:${PYTHON_VERSION}-slim AS runtime",
    ]
    runs = [args for instruction, args in steps if instruction == "RUN"]
    copies = [args for instruction, args in steps if instruction == "COPY"]
    # Dependencies install in their own layer, before the source is copied in.
    deps = next(
        i for i, (ins, a) in enumerate(steps) if ins == "RUN" and "--no-install-project" in a
    )
    src = next(i for i, (ins, a) in enumerate(steps) if ins == "COPY" and a.startswith("src "))
    assert deps < src
    assert "pyproject.toml uv.lock ./" in copies
    assert any("--mount=type=cache" in run and "uv sync --locked --no-dev" in run for run in runs)
    # Runs as a non-root user, with a health check on /health, served by uvicorn.
    runtime = steps[instructions.index("FROM", 1) :]
    users = [args for instruction, args in runtime if instruction == "USER"]
    assert users == ["app"]
    assert "useradd --system" in " ".join(a for i, a in runtime if i == "RUN")
    assert "http://127.0.0.1:8000/health" in arguments["HEALTHCHECK"]
    # The service's own entry point (WEB_CONCURRENCY workers with the wing), JSON log lines.
    assert arguments["CMD"] == (
        f'["python", "-m", "{PACKAGE}", "--host", "0.0.0.0", "--port", "8000"]'
    )
    environment = " ".join(a for i, a in runtime if i == "ENV").split()
    # ... and no API documents published unless asked.
    assert {"LOG_FORMAT=json", "API_DOCS=false"} <= set(environment)
    assert ("WEB_CONCURRENCY=2" in environment) == ("workers" in variant.wings)
    # The uv that builds the image reads the lock format the template writes.
    uv_image = re.search(r"ghcr\.io/astral-sh/uv:(\d+)\.(\d+)", " ".join(copies))
    assert uv_image is not None
    assert (int(uv_image[1]), int(uv_image[2])) >= UV_MINOR
    assert (
        ("VOLUME", "/data") in steps if variant.database == "sqlite" else "/data" not in str(steps)
    )


def test_dockerignore_keeps_secrets_and_local_state_out(baked: tuple[Variant, Path]) -> None:
    _, project = baked
    ignored = set((project / ".dockerignore").read_text().split())

    assert {".env", ".venv", ".git", "*.db"} <= ignored


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_compose(baked: tuple[Variant, Path]) -> None:
    variant, project = baked
    compose = load_yaml(project / "compose.yaml")
    services = compose["services"]
    app, migrate = services["app"], services["migrate"]

    assert migrate["command"] == ["alembic", "upgrade", "head"]
    assert migrate["restart"] == "no"
    assert app["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    for service in (app, migrate):
        assert service["build"] == "."
        assert service["env_file"] == [{"path": ".env", "required": False}]
    url = app["environment"]["DATABASE_URL"]
    assert migrate["environment"]["DATABASE_URL"] == url
    wings = {
        "reverse_proxy": {"proxy"},
        "pgbouncer": {"pgbouncer", "app-pgbouncer"},
        "read_replicas": {"standby", "app-standby"},
        "jobs": {"redis", "worker"},
        "tracing": {"otel-collector"},
    }
    expected = {"migrate", "app"} | ({"db"} if variant.database == "postgresql" else set())
    for wing, names in wings.items():
        expected |= names if wing in variant.wings else set()
    assert set(services) == expected
    if "reverse_proxy" in variant.wings:
        assert "ports" not in app  # reached through the proxy only
        assert app["environment"]["FORWARDED_ALLOW_IPS"] == "*"
        assert_proxy(project, services["proxy"])
    else:
        assert app["ports"] == ["8000:8000"]
        assert "FORWARDED_ALLOW_IPS" not in app["environment"]
        assert not (project / "deploy").exists()
    if variant.database == "postgresql":
        db = services["db"]
        assert "profiles" not in app
        assert re.fullmatch(r"postgres:\d+\.\d+-\w+", db["image"]), "pin the postgres image"
        assert "pg_isready" in " ".join(db["healthcheck"]["test"])
        assert db["volumes"] == ["db-data:/var/lib/postgresql/data"]
        assert "db-data" in compose["volumes"]
        assert migrate["depends_on"]["db"] == {"condition": "service_healthy"}
        assert (
            url == f"postgresql+{variant.sqlalchemy_driver}://postgres:postgres@db:5432/{PACKAGE}"
        )
        if "pgbouncer" in variant.wings:
            assert_pgbouncer_profile(compose, variant)
        if "read_replicas" in variant.wings:
            assert_standby_profile(compose, variant)
        else:
            assert "configs" not in db
            assert set(compose["volumes"]) - {"redis-data"} == {"db-data"}
        if not {"pgbouncer", "read_replicas"} & variant.wings:
            assert "configs" not in compose
    else:
        assert app["volumes"] == migrate["volumes"] == ["app-data:/data"]
        assert "app-data" in compose["volumes"]
        assert url.endswith(f":////data/{PACKAGE}.db")
    if "jobs" in variant.wings:
        assert_jobs(compose, url)
    if "tracing" in variant.wings:
        assert_collector(project, services["otel-collector"])
    else:
        assert not (project / "otel-collector.yaml").exists()


def assert_jobs(compose: dict[str, Any], url: str) -> None:
    """The worker runs from the service's image, on its database, after the migrations,
    with Redis (pinned, checked, its queues on a volume) as its broker."""
    services = compose["services"]
    worker, redis = services["worker"], services["redis"]
    assert worker["build"] == "."
    assert worker["command"] == ["python", "-m", f"{PACKAGE}.jobs", "worker"]
    assert worker["environment"] == {"DATABASE_URL": url, "JOBS_BROKER_URL": "redis://redis:6379/0"}
    assert worker["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert worker["depends_on"]["redis"] == {"condition": "service_healthy"}
    assert worker["healthcheck"] == {"disable": True}  # the image's checks the HTTP service
    assert re.fullmatch(r"redis:\d+\.\d+-\w+", redis["image"]), "pin the redis image"
    assert redis["volumes"] == ["redis-data:/data"]
    assert "redis-data" in compose["volumes"]
    assert "ping" in redis["healthcheck"]["test"]


def assert_collector(project: Path, collector: dict[str, Any]) -> None:
    """An OpenTelemetry collector (pinned) in the tracing profile, configured by
    otel-collector.yaml to take OTLP where the README says, and to pass spans on."""
    assert collector["profiles"] == ["tracing"]
    image = collector["image"]
    assert re.fullmatch(r"otel/opentelemetry-collector-contrib:\d+\.\d+\.\d+", image), "pin it"
    assert collector["volumes"] == ["./otel-collector.yaml:/etc/otelcol-contrib/config.yaml:ro"]
    config = yaml.safe_load((project / "otel-collector.yaml").read_text())
    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"] == "0.0.0.0:4318"
    pipeline = config["service"]["pipelines"]["traces"]
    assert pipeline["receivers"] == ["otlp"]
    assert set(pipeline["processors"]) <= set(config["processors"])
    assert pipeline["exporters"]
    assert set(pipeline["exporters"]) <= set(config["exporters"])
    readme = (project / "README.md").read_text()
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=http://otel-collector:4318" in readme
    assert "docker compose --profile tracing up" in readme


def assert_proxy(project: Path, proxy: dict[str, Any]) -> None:
    """nginx from Debian (the program tests/test_proxy.py runs), with deploy/nginx.conf,
    in front of the app's port, on the published :8000."""
    steps = dockerfile_instructions(proxy["build"]["dockerfile_inline"])
    assert ("FROM", "debian:bookworm-slim") in steps
    (install,) = [arguments for instruction, arguments in steps if instruction == "RUN"]
    assert "apt-get install --yes --no-install-recommends" in install
    assert {"nginx", "libnginx-mod-http-headers-more-filter"} <= set(install.split())
    assert ("STOPSIGNAL", "SIGQUIT") in steps  # graceful: requests in flight finish
    (command,) = [arguments for instruction, arguments in steps if instruction == "CMD"]
    # The prefix holds the buffered bodies' folder (client_body_temp_path body).
    assert json.loads(command) == [
        "nginx",
        "-p",
        "/var/lib/nginx",
        "-c",
        "/etc/nginx/nginx.conf",
        "-g",
        "daemon off;",
    ]
    assert proxy["volumes"] == ["./deploy/nginx.conf:/etc/nginx/nginx.conf:ro"]
    assert proxy["ports"] == ["8000:80"]
    assert proxy["depends_on"] == {"app": {"condition": "service_healthy"}}
    config = (project / "deploy/nginx.conf").read_text()
    assert "server app:8000;" in config  # the image's --port 8000
    assert "listen 80 default_server;" in config
    assert "client_body_temp_path body;" in config


def assert_standby_profile(compose: dict[str, Any], variant: Variant) -> None:
    """``--profile standby``: a hot standby of db, applying commits late, and an app on :8002
    that reads from it."""
    services = compose["services"]
    db, standby, app = services["db"], services["standby"], services["app-standby"]
    assert standby["profiles"] == app["profiles"] == ["standby"]
    assert standby["image"] == db["image"]
    assert standby["user"] == "postgres"
    script = standby["command"][-1]
    assert standby["command"][:2] == ["bash", "-c"]
    # Copied once from db with its streaming settings, then served (compose's $$ is $).
    assert 'if [ ! -s "$$PGDATA/PG_VERSION" ]' in script
    assert "pg_basebackup --host=db --username=postgres" in script
    assert "--write-recovery-conf --wal-method=stream" in script
    assert "recovery_min_apply_delay = '1s'" in script
    assert script.strip().endswith("exec postgres")
    assert standby["volumes"] == ["standby-data:/var/lib/postgresql/data"]
    assert "standby-data" in compose["volumes"]
    assert standby["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert "pg_isready" in " ".join(standby["healthcheck"]["test"])
    # db lets standbys replicate: a script its image runs once, on a new volume.
    (access,) = db["configs"]
    assert access == {
        "source": "replication-access",
        "target": "/docker-entrypoint-initdb.d/replication-access.sh",
    }
    content = compose["configs"]["replication-access"]["content"]
    assert 'echo "host replication all all scram-sha-256" >> "$$PGDATA/pg_hba.conf"' in content
    scheme = f"postgresql+{variant.sqlalchemy_driver}"
    assert app["environment"] == {
        "DATABASE_URL": f"{scheme}://postgres:postgres@db:5432/{PACKAGE}",
        "DATABASE_REPLICA_URLS": f"{scheme}://postgres:postgres@standby:5432/{PACKAGE}",
    }
    assert app["ports"] == ["8002:8000"]
    assert app["depends_on"] == {
        "standby": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }


def assert_pgbouncer_profile(compose: dict[str, Any], variant: Variant) -> None:
    """``--profile pgbouncer``: a second app on :8001, through PgBouncer in transaction mode."""
    services = compose["services"]
    bouncer, app = services["pgbouncer"], services["app-pgbouncer"]
    assert bouncer["profiles"] == app["profiles"] == ["pgbouncer"]
    assert "FROM debian:bookworm-slim" in bouncer["build"]["dockerfile_inline"]
    assert (
        "apt-get install --yes --no-install-recommends pgbouncer"
        in (bouncer["build"]["dockerfile_inline"])
    )
    assert bouncer["depends_on"]["db"] == {"condition": "service_healthy"}
    ini = compose["configs"]["pgbouncer.ini"]["content"]
    assert "pool_mode = transaction" in ini.splitlines()
    assert "listen_port = 6432" in ini.splitlines()
    targets = {config["source"]: config["target"] for config in bouncer["configs"]}
    assert targets["pgbouncer.ini"] == "/etc/pgbouncer/pgbouncer.ini"
    assert f"auth_file = {targets['pgbouncer-users']}" in ini.splitlines()
    assert app["environment"] == {
        "DATABASE_URL": f"postgresql+{variant.sqlalchemy_driver}://postgres:postgres@pgbouncer:6432/{PACKAGE}?plugin=pgbouncer",
    }
    assert app["ports"] == ["8001:8000"]
    assert app["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    # Migrations reach PostgreSQL directly.
    assert "@db:5432/" in services["migrate"]["environment"]["DATABASE_URL"]


def workflow_runs(workflow: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in workflow["jobs"]["check"]["steps"])


def test_ci_workflow(baked: tuple[Variant, Path]) -> None:
    variant, project = baked
    path = project / ".github/workflows/ci.yml"
    workflow = load_yaml(path)
    job = workflow["jobs"]["check"]
    runs = workflow_runs(workflow)

    # PyYAML reads the bare key `on` as True.
    assert set(workflow[True]) == {"push", "pull_request"}
    for command in [
        "uv sync --locked",
        "uv run ruff check .",
        "uv run ruff format --check .",
        "uv run mypy",
        "uv run alembic upgrade head",
        "uv run alembic check",
        "uv run pytest",
    ]:
        assert command in runs
    uses = [step["uses"] for step in job["steps"] if "uses" in step]
    assert uses[0].startswith("actions/checkout@")
    assert any(u.startswith("astral-sh/setup-uv@") for u in uses)
    # The programs the suite's proxy and PgBouncer tests start (they fail under CI without).
    installs = [line for line in runs.splitlines() if line.startswith("sudo apt-get install")]
    packages = {package for install in installs for package in install.split()[4:]}
    needed = {
        "reverse_proxy": {"nginx", "libnginx-mod-http-headers-more-filter"},
        "pgbouncer": {"pgbouncer"},
    }
    assert len(installs) <= 1
    assert packages == {p for wing, names in needed.items() if wing in variant.wings for p in names}
    if variant.database == "postgresql":
        service = job["services"]["postgres"]
        assert service["image"].startswith("postgres:")
        assert "pg_isready" in service["options"]
        assert job["env"]["TEST_DATABASE_URL"].endswith(f"/{PACKAGE}_test")
    expected = {"postgres"} if variant.database == "postgresql" else set()
    expected |= {"redis"} if "jobs" in variant.wings else set()
    assert set(job.get("services", {})) == expected
    if "jobs" in variant.wings:
        redis = job["services"]["redis"]
        assert re.fullmatch(r"redis:\d+\.\d+-\w+", redis["image"])
        assert redis["ports"] == ["6379:6379"]  # where tests/test_jobs.py looks by default
        assert "redis-cli ping" in redis["options"]


def test_every_make_verb_is_listed_by_help_and_runs_through_uv(
    baked: tuple[Variant, Path], tmp_path: Path
) -> None:
    _, project = baked
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")

    def make_output(*args: str) -> list[str]:
        result = subprocess.run(
            [make, *args], cwd=project, capture_output=True, text=True, check=True
        )
        return result.stdout.splitlines()

    phony = re.search(r"^\.PHONY: (.+)$", (project / "Makefile").read_text(), re.M)
    assert phony is not None
    verbs = phony.group(1).split()
    listed = dict(line.split("\t", 1) for line in make_output("help"))
    assert sorted(listed) == sorted(verbs)
    assert all(description.strip() for description in listed.values())
    for verb in set(verbs) - {"help"}:
        commands = make_output("-n", verb, "m=a change")
        assert commands, verb
        # Outside a git repository, install says how to get the hook instead of failing.
        said = [command for command in commands if command.startswith("echo ")]
        assert all(
            command.startswith(("uv sync", "uv run "))
            for command in commands
            if command not in said
        ), commands
        assert said == ([] if verb != "install" else [said[0]]), commands
    # Serving migrates first.
    assert make_output("-n", "run")[0] == "uv run alembic upgrade head"
    # A revision needs a message, and says so.
    nameless = subprocess.run([make, "revision"], cwd=project, capture_output=True, text=True)
    assert nameless.returncode != 0
    assert 'Say what changed: make revision m="add a column"' in nameless.stderr
    # In a git repository, install installs the hook too.
    repository = tmp_path / "repository"
    repository.mkdir()
    shutil.copy(project / "Makefile", repository)
    subprocess.run(["git", "init", "--quiet"], cwd=repository, check=True)
    installs = subprocess.run(
        [make, "-n", "install"], cwd=repository, capture_output=True, text=True, check=True
    )
    assert installs.stdout.splitlines() == ["uv sync", "uv run pre-commit install"]


def test_pre_commit_runs_offline_from_the_project_environment(baked: tuple[Variant, Path]) -> None:
    _, project = baked
    config = load_yaml(project / ".pre-commit-config.yaml")

    assert [repo["repo"] for repo in config["repos"]] == ["local"]
    hooks = {hook["id"]: hook for hook in config["repos"][0]["hooks"]}
    assert {"ruff-check", "ruff-format", "mypy", "trailing-whitespace", "end-of-file-fixer"} <= set(
        hooks
    )
    for hook in hooks.values():
        assert hook["language"] == "system"
        # The environment's own tool: no uv needed on PATH when git runs the hook.
        assert hook["entry"].startswith(".venv/bin/")


@pytest.mark.parametrize("license", COOKIECUTTER["license"])
def test_license(cookies: Cookies, license: str) -> None:
    project = bake(cookies, license=license, author_name="Ada Lovelace")
    text = (project / "LICENSE").read_text()
    pyproject = (project / "pyproject.toml").read_text()

    first_line = {
        "MIT": "MIT License",
        "Apache-2.0": "Apache License",
        "Proprietary": "Copyright (c) ",
    }[license]
    assert text.lstrip().startswith(first_line)
    spdx = "LicenseRef-Proprietary" if license == "Proprietary" else license
    assert f'license = "{spdx}"' in pyproject
    if license != "Apache-2.0":
        assert "Ada Lovelace" in text


def test_every_setting_is_documented(baked: tuple[Variant, Path]) -> None:
    variant, project = baked
    tree = ast.parse((project / f"src/{PACKAGE}/settings.py").read_text())
    settings = next(
        node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Settings"
    )
    names = [
        node.target.id.upper()
        for node in settings.body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    ]
    readme = (project / "README.md").read_text()
    example = (project / ".env.example").read_text().splitlines()

    assert ("WEB_CONCURRENCY" in names) == ("workers" in variant.wings)
    documented = re.findall(r"^\| `([A-Z_]+)` \|", readme, re.M)
    offered = [line.split("=")[0].lstrip("# ") for line in example if "=" in line]
    # Read by the service too, not a setting: documented all the same.
    extra = ["PROMETHEUS_MULTIPROC_DIR"] if {"metrics", "workers"} <= variant.wings else []
    if "tracing" in variant.wings:  # read by OpenTelemetry's SDK
        extra += ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME", "OTEL_TRACES_SAMPLER"]
        extra += ["OTEL_TRACES_SAMPLER_ARG"]
    assert sorted(documented) == sorted(names + extra)
    assert sorted(offered) == sorted(names + extra)
    for wing, setting in [
        ("metrics", "METRICS_TOKEN"),
        ("idempotency_keys", "IDEMPOTENCY_KEY_TTL"),
        ("read_replicas", "DATABASE_REPLICA_URLS"),
    ]:
        assert (setting in names) == (wing in variant.wings), setting
