"""Every variant, installed as a user would and checked as its CI would.

Each variant is baked twice, with no wing and with every wing it can have,
and each bake gets its own virtual environment from its own pyproject.toml
and the uv.lock it was baked with (``uv sync --locked``: the lock must be
current, and the versions it pins are the ones tested here), so a dependency
it forgot to declare fails here. uv's shared cache makes the installs cheap
without letting one bake see another's packages. All tests of one bake run on
one xdist worker (``--dist loadgroup``), so it is baked and installed once.
Each wing is also checked alone (``ALONE``: type-checked, its own tests run) in
one variant of each driver.
"""

import collections
import http.client
import itertools
import json
import math
import os
import random
import re
import shutil
import socket
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from pytest_cookies.plugin import Cookies
from uv import find_uv_bin

from .conftest import Postgres, bake
from .matrix import (
    COOKIECUTTER,
    DRIVER_PACKAGES,
    MANIFEST,
    TEMPLATE_DIR,
    Variant,
    alone,
    answers,
    bakes_checked,
    interpreter,
    selected_variants,
)
from .private_postgres import PrivateCluster, free_port

pytestmark = pytest.mark.matrix

UV = find_uv_bin()
# What a developer's .env could say; none of it may reach the suite.
HOSTILE_SETTINGS = "LOG_LEVEL=WARNING\nLOG_FORMAT=json\nMAX_REQUEST_BODY=100\nDB_POOL_SIZE=1\n"
HOSTILE_ENVIRONMENT = {"LOG_LEVEL": "ERROR", "DB_POOL_TIMEOUT": "0.01", "WEB_CONCURRENCY": "7"}


def in_random_order() -> list[str]:
    """pytest's options that run a generated suite in an order of its own (pytest-randomly),
    a new one each run; a failure's command line names it, to run that order again."""
    seed = random.randrange(2**32)  # noqa: S311 (an order, not a secret)
    return ["-p", "randomly", f"--randomly-seed={seed}"]


RecordProperty = Callable[[str, object], None]


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run ``command``; fail the test with its output if it fails."""
    # Bytecode is written as modules are first imported (PYTHONDONTWRITEBYTECODE dropped),
    # so each project's processes compile what they use once; compiling every installed
    # module up front (uv's --compile-bytecode) cost more than all of it, 6 s of CPU a bake.
    dropped = {"VIRTUAL_ENV", "DATABASE_URL", "PYTHONDONTWRITEBYTECODE"}
    base = {k: v for k, v in os.environ.items() if k not in dropped}
    result = subprocess.run(
        command, cwd=cwd, env={**base, **(env or {})}, capture_output=True, text=True, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{output}"
    return output


class Project:
    """A baked, installed variant and the database it runs against."""

    def __init__(self, variant: Variant, path: Path, database_url: str, mypy_cache: Path) -> None:
        self.variant = variant
        self.path = path
        self.database_url = database_url
        self.timings: dict[str, float] = {}
        # mypy's cache, shared by the variants this worker checks one after another: it
        # keeps what it learnt of the same third-party packages (installed elsewhere, but
        # mypy takes a file of another path whose contents hash the same). Every project's
        # own modules are checked anew: their contents differ. Not shared with the other
        # worker: shared, a bake with every wing was once type-checked against the
        # settings.py of its no-wing sibling, checked at the same time on the other worker
        # (a module's entry is two files, meta and data, each renamed into place alone).
        self.env = {"MYPY_CACHE_DIR": str(mypy_cache)}

    def uv_run(self, *command: str, env: dict[str, str] | None = None) -> str:
        return run([UV, "run", "--frozen", *command], self.path, {**self.env, **(env or {})})

    def measure(self, record: RecordProperty, step: str, started: float) -> None:
        record(f"matrix:{self.variant.id}:{step}", round(time.perf_counter() - started, 2))


@pytest.fixture(
    scope="session",
    params=[
        pytest.param(b, id=b.id, marks=pytest.mark.xdist_group(b.id))
        for v in selected_variants()
        for b in bakes_checked(v)
    ],
)
def variant(request: pytest.FixtureRequest) -> Variant:
    param: Variant = request.param
    return param


@pytest.fixture(scope="session")
def database_url(
    variant: Variant, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A throwaway database for the variant: a SQLite file, or a PostgreSQL database dropped after."""
    if variant.database == "sqlite":
        yield f"sqlite+{variant.sqlalchemy_driver}:///{tmp_path_factory.mktemp('sqlite') / 'matrix.db'}"
        return
    postgres: Postgres = request.getfixturevalue("postgres")
    name = f"template_{re.sub(r'[^a-z]+', '_', variant.id)}_{uuid.uuid4().hex[:8]}"
    postgres.create_database(name)
    try:
        yield postgres.sqlalchemy_url(name, variant.sqlalchemy_driver)
    finally:
        postgres.drop_database(name)
    assert not postgres.database_exists(name)


@pytest.fixture(scope="session")
def project(
    variant: Variant,
    database_url: str,
    cookies_session: Cookies,
    tmp_path_factory: pytest.TempPathFactory,
) -> Project:
    """The variant, baked with its answers and installed into its own virtual environment,
    under the Python its answers name, once."""
    return install(variant, database_url, cookies_session, tmp_path_factory)


def install(
    variant: Variant,
    database_url: str,
    cookies: Cookies,
    tmp_path_factory: pytest.TempPathFactory,
) -> Project:
    """``variant`` baked with its answers and installed into a virtual environment of its
    own, under the Python its answers name."""
    context = {**variant.context, **answers(variant)}
    version = context.get("python_version", COOKIECUTTER["python_version"][0])
    python = interpreter(version)
    if python is None:
        reason = f"no Python {version} interpreter found (on PATH, or installed by pyenv)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must check every python_version")
        pytest.skip(f"SKIPPING {variant.id}: {reason}")
    started = time.perf_counter()
    path = bake(cookies, **context)
    baked = time.perf_counter()
    run([UV, "sync", "--locked", "--python", python, "--quiet"], path)
    project = Project(variant, path, database_url, tmp_path_factory.getbasetemp() / "mypy")
    project.timings = {
        "bake_s": round(baked - started, 2),
        "install_s": round(time.perf_counter() - baked, 2),
    }
    return project


def test_installs_from_its_own_declaration(
    project: Project, record_property: RecordProperty
) -> None:
    for step, seconds in project.timings.items():
        record_property(f"matrix:{project.variant.id}:{step}", seconds)
    assert (project.path / "uv.lock").is_file()
    assert (project.path / ".venv").is_dir()
    version = answers(project.variant).get("python_version", COOKIECUTTER["python_version"][0])
    assert f"version_info = {version}." in (project.path / ".venv/pyvenv.cfg").read_text()
    freeze = run([UV, "pip", "freeze", "--python", str(project.path / ".venv")], project.path)
    installed = {line.split("==")[0].lower() for line in freeze.splitlines()}
    assert installed & DRIVER_PACKAGES == project.variant.driver_packages
    assert ("greenlet" in installed) == (project.variant.driver == "async")
    for wing, packages in MANIFEST["wing_packages"].items():
        assert (set(packages) <= installed) == (wing in project.variant.wings), wing


def test_lint_and_format(project: Project, record_property: RecordProperty) -> None:
    started = time.perf_counter()
    project.uv_run("ruff", "check", ".")
    project.uv_run("ruff", "format", "--check", ".")
    project.measure(record_property, "lint_s", started)


def test_strict_types(project: Project, record_property: RecordProperty) -> None:
    started = time.perf_counter()
    output = project.uv_run("mypy")
    project.measure(record_property, "mypy_s", started)
    assert "Success: no issues found" in output


def test_declares_what_its_code_imports(project: Project) -> None:
    checker = TEMPLATE_DIR / "tests/declared_imports.py"
    report = json.loads(project.uv_run("python", str(checker)))

    assert report == {"runtime": {}, "dev": {}}, "imported but not declared"


def test_pre_commit_passes_on_a_fresh_bake(
    project: Project, tmp_path_factory: pytest.TempPathFactory
) -> None:
    if not project.variant.wings:
        pytest.skip("pre-commit runs on each variant's bake with every wing: the same hooks")
    run(["git", "init", "--quiet"], project.path)
    run(["git", "add", "--all"], project.path)
    home = {"PRE_COMMIT_HOME": str(tmp_path_factory.mktemp("pre-commit"))}

    output = project.uv_run("pre-commit", "run", "--all-files", env=home)

    assert "Failed" not in output
    assert re.search(r"^mypy \(strict, whole project\)\.+Passed$", output, re.M), output
    changed = run(["git", "diff", "--name-only"], project.path)
    assert changed == "", f"pre-commit changed files:\n{changed}"


# The README's "Add a resource": a file it names, then its code.
README_FILE = re.compile(r"^File `([^`]+)`:\n\n```python\n(.*?)^```$", re.M | re.S)
README_LINES = re.compile(r"next to the items router's:\n\n```python\n(.*?)^```$", re.M | re.S)


def query(database_url: str, statement: str) -> list[tuple[object, ...]]:
    """``statement`` on the variant's database, outside the project, committed."""
    url = urlsplit(database_url)
    if url.scheme.startswith("sqlite"):
        with closing(sqlite3.connect(url.path.removeprefix("/"))) as lite, lite:
            return lite.execute(statement).fetchall()
    plain = url._replace(scheme="postgresql").geturl()
    with psycopg.connect(plain, autocommit=True) as server:
        cursor = server.execute(statement)
        return cursor.fetchall() if cursor.description else []


def test_own_suite_passes_with_a_resource_added_as_the_readme_says(
    project: Project, record_property: RecordProperty
) -> None:
    """The README's walkthrough: its files and migration (with the CLI, as a user runs
    it), lint and types; a column added to items and dropped again with notes stored
    (on SQLite two table rebuilds, which must keep them). Then the project's own suite,
    on the project the walkthrough left: the notes tests, the stairway through every
    revision and the contract test included."""
    env = {"DATABASE_URL": project.database_url}
    started = time.perf_counter()
    (package,) = (project.path / "src").iterdir()
    readme = (project.path / "README.md").read_text()
    section = readme[readme.index("## Add a resource") : readme.index("## The API")]
    project.uv_run("alembic", "upgrade", "head", env=env)
    run(["git", "init", "--quiet"], project.path)
    run(["git", "add", "--all"], project.path)  # what the bake gave, to compare with

    files = README_FILE.findall(section)
    assert [name for name, _ in files][-1] == "tests/test_notes.py"
    for name, code in files:
        (project.path / name).parent.mkdir(parents=True, exist_ok=True)
        (project.path / name).write_text(code)
    main = package / "main.py"
    text = main.read_text()
    (lines,) = README_LINES.findall(section)
    new_import, new_include = lines.splitlines()
    for anchor, line in [
        ("from .items.routes import router as items_router\n", new_import),
        ("    app.include_router(items_router)\n", new_include),
    ]:
        assert anchor in text
        text = text.replace(anchor, f"{anchor}{line}\n")
    main.write_text(text)

    versions = project.path / "migrations/versions"
    before = set(versions.glob("*.py"))
    project.uv_run("alembic", "revision", "--autogenerate", "-m", "create notes", env=env)
    (migration,) = set(versions.glob("*.py")) - before
    assert migration.name.endswith("_create_notes.py")
    assert 'op.create_table(\n        "notes",' in migration.read_text()
    project.uv_run("alembic", "upgrade", "head", env=env)
    assert "(head)" in project.uv_run("alembic", "current", env=env)
    assert "No new upgrade operations detected" in project.uv_run("alembic", "check", env=env)

    # Nothing outside the new package and its migration changed, but main.py's two lines.
    assert run(["git", "diff", "--name-only"], project.path).split() == [
        main.relative_to(project.path).as_posix()
    ]
    added = [
        line[1:]
        for line in run(["git", "diff", "-U0"], project.path).splitlines()
        if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))
    ]
    assert added == [new_import, new_include]
    untracked = run(["git", "ls-files", "--others", "--exclude-standard"], project.path).split()
    notes = package.relative_to(project.path) / "notes"
    assert sorted(untracked) == sorted(
        [
            f"{notes}/{name}"
            for name in ("__init__.py", "models.py", "schemas.py", "repository.py", "routes.py")
        ]
        + [migration.relative_to(project.path).as_posix(), "tests/test_notes.py"]
    )

    project.uv_run("ruff", "check", ".")
    project.uv_run("ruff", "format", "--check", ".")
    assert "Success: no issues found" in project.uv_run("mypy")

    # The user's next step: a column added to items, then dropped again, with notes stored.
    query(project.database_url, "INSERT INTO items (name, version) VALUES ('Kept', 1)")
    for _ in range(3):
        query(
            project.database_url,
            "INSERT INTO notes (item_id, body, kind, priority, pinned)"
            " SELECT id, 'a note', 'remark', 1, false FROM items WHERE name = 'Kept'",
        )
    stored = query(project.database_url, "SELECT id, item_id, body FROM notes ORDER BY id")
    assert len(stored) == 3
    models = package / "items/models.py"
    plain = models.read_text()
    column = "    version: Mapped[int] = mapped_column()\n"
    assert column in plain
    for step, text in [
        ("add colour", plain.replace(column, f"{column}    colour: Mapped[str | None]\n")),
        ("drop colour", plain),
    ]:
        models.write_text(text)
        project.uv_run("alembic", "revision", "--autogenerate", "-m", step, env=env)
        project.uv_run("alembic", "upgrade", "head", env=env)

    # SQLite rebuilt items twice: its notes are still there (not cascaded away).
    assert query(project.database_url, "SELECT id, item_id, body FROM notes ORDER BY id") == stored
    query(project.database_url, "DELETE FROM notes")
    query(project.database_url, "DELETE FROM items")
    project.measure(record_property, "resource_s", started)

    # A developer's .env and shell, as the quickstart leaves them and then some:
    # the suite sets what it needs itself, so none of it may change a result.
    # Without wings the suite runs in one process, as CI runs it; with every wing in
    # two worker processes (pytest-xdist), as make test runs it: each worker on a
    # database of its own, dropped at its end.
    (project.path / ".env").write_text(HOSTILE_SETTINGS)
    env = {"TEST_DATABASE_URL": project.database_url, **HOSTILE_ENVIRONMENT}
    column, workers = ("suite_n2_s", ["-n", "2"]) if project.variant.wings else ("suite_s", [])
    started = time.perf_counter()
    try:
        output = project.uv_run(
            "pytest", "-q", "-p", "no:cacheprovider", *in_random_order(), *workers, env=env
        )
    finally:
        (project.path / ".env").unlink()
    project.measure(record_property, column, started)
    if project.variant.database == "postgresql":
        of_workers = (
            "SELECT datname FROM pg_database WHERE datname LIKE current_database() || '_gw%'"
        )
        assert query(project.database_url, of_workers) == [], "a worker's database outlived its run"
    summary = output.strip().splitlines()[-1]
    match = re.fullmatch(r"(\d+) passed(?:, (\d+) skipped)? in [\d.]+s(?: \([\d:]+\))?", summary)
    assert match, f"expected only passes, got: {summary}"
    if match.group(2):
        assert_only_known_skips(output)
    record_property(f"matrix:{project.variant.id}:suite_passed", int(match.group(1)))
    assert int(match.group(1)) >= 50


def assert_only_known_skips(output: str) -> None:
    """Only the PgBouncer, nginx, standby and jobs tests may skip, and only where their
    programs (or Redis) are missing and CI is not set (under CI they fail instead)."""
    skipped = set(re.findall(r"^SKIPPED \[\d+\] (\S+?):", output, re.M))
    assert not os.environ.get("CI"), output
    expected = {
        "tests/test_pgbouncer.py",
        "tests/test_proxy.py",
        "tests/test_replicas.py",
        "tests/test_jobs.py",
    }
    assert skipped <= expected, output
    if "tests/test_replicas.py" in skipped:
        assert shutil.which("initdb") is None
        assert not list(Path("/usr/lib/postgresql").glob("*/bin/pg_basebackup"))
    for program, test in [
        ("pgbouncer", "tests/test_pgbouncer.py"),
        ("nginx", "tests/test_proxy.py"),
    ]:
        if test in skipped:
            assert shutil.which(program) is None
            assert not Path(f"/usr/sbin/{program}").exists()
    if "tests/test_jobs.py" in skipped:
        assert not redis_answers()


def redis_answers() -> bool:
    """Whether a Redis answers PING where the generated tests look (127.0.0.1:6379)."""
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=3) as redis:
            redis.sendall(b"PING\r\n")
            return redis.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def wing_tests(variant: Variant, wing: str) -> list[str]:
    """The test modules of the generated project that come with ``wing``."""
    return [
        target
        for target, answers in MANIFEST["only"].items()
        if target.startswith("tests/test_")
        and wing in answers
        and all(variant.context[prompt] == answer for prompt, answer in answers.items())
    ]


@pytest.mark.parametrize(
    "single",
    [
        pytest.param(w, id=w.id, marks=pytest.mark.xdist_group(w.id))
        for v in selected_variants()
        for w in alone(v)
    ],
)
def test_a_wing_alone_type_checks_and_passes_its_own_tests(
    single: Variant,
    request: pytest.FixtureRequest,
    cookies: Cookies,
    tmp_path_factory: pytest.TempPathFactory,
    record_property: RecordProperty,
) -> None:
    """Each wing joins the core by itself, without the others: the project it gives is
    strictly typed, and the wing's own tests pass in it."""
    (wing,) = single.wings
    if single.database == "postgresql":
        postgres: Postgres = request.getfixturevalue("postgres")
        name = f"template_alone_{wing}_{uuid.uuid4().hex[:8]}"
        postgres.create_database(name)
        database_url = postgres.sqlalchemy_url(name, single.sqlalchemy_driver)
    else:
        database_url = (
            f"sqlite+{single.sqlalchemy_driver}:///{tmp_path_factory.mktemp('alone')}/alone.db"
        )
    try:
        project = install(single, database_url, cookies, tmp_path_factory)
        started = time.perf_counter()
        assert "Success: no issues found" in project.uv_run("mypy")
        tests = wing_tests(single, wing)
        assert tests, wing
        env = {"TEST_DATABASE_URL": database_url}
        output = project.uv_run(
            "pytest", "-q", "-p", "no:cacheprovider", *in_random_order(), *tests, env=env
        )
        project.measure(record_property, "alone_s", started)
    finally:
        if single.database == "postgresql":
            postgres.drop_database(name)
    summary = output.strip().splitlines()[-1]
    match = re.fullmatch(r"(\d+) passed(?:, (\d+) skipped)? in [\d.]+s(?: \([\d:]+\))?", summary)
    assert match, output
    if match.group(2):
        assert_only_known_skips(output)


class Load:
    """Clients creating items as fast as the service answers, each on a keep-alive
    connection of its own; what every request got, and when."""

    def __init__(self, port: int, clients: int) -> None:
        self.port = port
        self.stopping = threading.Event()
        self.created: list[str] = []  # names answered 201
        self.answers: list[tuple[float, int]] = []  # (time.monotonic(), status)
        self.strays: list[str] = []  # anything but a 201 or a JSON 503 with Retry-After
        self.threads = [threading.Thread(target=self._create, args=(n,)) for n in range(clients)]

    def __enter__(self) -> "Load":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(30)

    def _create(self, client: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            self._keep_creating(client, connection)
        finally:
            connection.close()

    def _keep_creating(self, client: int, connection: http.client.HTTPConnection) -> None:
        for n in itertools.count():
            if self.stopping.is_set():
                return
            name = f"load-{client}-{n}"
            try:
                connection.request(
                    "POST",
                    "/items",
                    json.dumps({"name": name}),
                    {"Content-Type": "application/json"},
                )
                response = connection.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException) as error:
                self.strays.append(f"{name}: {error!r}")
                connection.close()  # the next request connects again
                continue
            self.answers.append((time.monotonic(), response.status))
            if response.status == 201:
                self.created.append(name)
            elif not (
                response.status == 503
                and response.getheader("Retry-After")
                and "detail" in json.loads(body)
            ):
                self.strays.append(f"{name}: {response.status} {body[:200]!r}")

    def first_created_after(self, moment: float) -> float:
        """Seconds from ``moment`` to the first 201 after it (infinite: none came)."""
        after = [at for at, status in self.answers if status == 201 and at > moment]
        return min(after, default=math.inf) - moment


def test_a_database_restart_and_crash_under_load_lose_nothing_and_answer_only_503s(
    project: Project, record_property: RecordProperty, tmp_path: Path
) -> None:
    """A private PostgreSQL cluster restarted (fast shutdown) and then crashed
    (immediate shutdown) while 16 clients create items through the served project:
    every acknowledged create is stored, the outage is answered only with JSON 503s
    carrying Retry-After, creates succeed within 5 s of the server's return, and no
    connection is left idle in a transaction."""
    if project.variant.database != "postgresql":
        pytest.skip("SQLite has no server to restart")
    if project.variant.wings:
        pytest.skip("a core guarantee: checked on each variant's bake without wings")
    cluster = PrivateCluster()
    server = None
    try:
        cluster.start()
        cluster.create_database("service")
        url = cluster.url("service", f"postgresql+{project.variant.sqlalchemy_driver}")
        env = {"DATABASE_URL": url, "LOG_FORMAT": "json", "LOG_LEVEL": "WARNING"}
        project.uv_run("alembic", "upgrade", "head", env=env)
        port = free_port()
        log = tmp_path / "server.log"
        with log.open("wb") as output:
            server = subprocess.Popen(
                [
                    str(project.path / ".venv/bin/python"),
                    "-m",
                    package_of(project),
                    "--port",
                    str(port),
                ],
                cwd=project.path,
                env={**os.environ, **env},
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        wait_for(port, server)
        with Load(port, clients=16) as load:
            time.sleep(3)
            cluster.restart()
            restarted = time.monotonic()
            time.sleep(6)
            cluster.crash()
            crashed = time.monotonic()
            time.sleep(6)
        stored = {name for (name,) in query(cluster.url("service"), "SELECT name FROM items")}
        idle = query(
            cluster.url("service"),
            "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'",
        )
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        cluster.remove()

    statuses = collections.Counter(status for _, status in load.answers)
    back = (load.first_created_after(restarted), load.first_created_after(crashed))
    record_property(
        f"matrix:{project.variant.id}:outage",
        f"{dict(statuses)}; creating again {back[0]:.3f} s after the restart,"
        f" {back[1]:.3f} s after the crash",
    )
    assert load.strays == [], load.strays[:10]
    assert set(statuses) <= {201, 503}
    assert statuses[503] > 0  # the outages were seen
    assert set(load.created) <= stored, "an acknowledged create was lost"
    assert max(back) < 5
    assert idle == [(0,)]
    assert "Traceback" not in log.read_text()


def wait_for(port: int, server: subprocess.Popen[bytes]) -> None:
    """Until the server on ``port`` answers ``/health``."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert server.poll() is None, "the server exited while starting"
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
        finally:
            connection.close()
    raise AssertionError(f"nothing answered on port {port} within 30 s")


def package_of(project: Project) -> str:
    (package,) = [path.name for path in (project.path / "src").iterdir() if path.is_dir()]
    return package
