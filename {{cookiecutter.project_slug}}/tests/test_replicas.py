"""Reads on a hot standby, and every client still reading its own writes.

These tests start a primary and a hot standby of their own (``initdb``,
``pg_basebackup -R``, ``pg_ctl``: PostgreSQL's server programs, run as the
``postgres`` user when the tests run as root), each with its own data
directory and port. The standby applies every commit ``DELAY`` seconds late
(``recovery_min_apply_delay``), so a read that goes to it right after a write
is certain to miss the write unless the service waits for it: with the
consistency token every write is read back, and without it reads are stale —
the proof that the test can fail. Reads are seen on the standby, and
background work reads there too unless it asks for the primary; the standby
stopped mid-run, lagging past its bound, or promoted, leaves the rotation at
no 5xx; tokens made up are no 500. Without
the server programs the tests are skipped with a loud reason — unless ``CI``
is set.
"""

import asyncio
import gc
import os
import shutil
import subprocess
import tempfile
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from fastapi import FastAPI
from httpx2 import AsyncClient
{% if cookiecutter.tracing %}
from opentelemetry.sdk.trace import ReadableSpan
{% endif %}
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from {{ cookiecutter.package_name }}.consistency import (
    POSITION_COOKIE,
    POSITION_HEADER,
)
from {{ cookiecutter.package_name }}.db.replicas import (
    ReplicatedDatabase,
    parse_position,
)
from {{ cookiecutter.package_name }}.items.models import Item
from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.settings import (
    URL_SCHEME,
    Settings,
    problems,
)

from .support import (
    TCPProxy,
    alembic_config,
    client_of,
    empty_database,
    free_port,
    running_app,
)

# Seconds the standby applies each commit late.
DELAY = 1.5
PAIRS = 300
DATABASE = "replicated"
SERVICE_CONNECTIONS = (
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE backend_type = 'client backend' AND application_name <> 'psql'"
)


def server_programs() -> Path:
    """Where ``initdb``, ``pg_ctl`` and ``pg_basebackup`` are."""
    folders = [Path(p) for p in ("/usr/lib/postgresql",) if Path(p).is_dir()]
    candidates = sorted((f for folder in folders for f in folder.glob("*/bin")), reverse=True)
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidates.insert(0, Path(found.stdout.strip()))
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_basebackup").is_file():
            return folder
    reason = "PostgreSQL's server programs (initdb, pg_ctl, pg_basebackup) are not installed"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must test reads on a standby")
    pytest.skip(f"SKIPPING THE STANDBY TESTS: {reason}")


class Server:
    """One PostgreSQL server of these tests: its data directory, port and log."""

    def __init__(self, programs: Path, root: Path, name: str) -> None:
        self.programs = programs
        self.root = root
        self.data = root / name
        self.log = root / f"{name}.log"
        self.port = free_port()

    def run(self, program: str, *args: str) -> str:
        command = [str(self.programs / program), *args]
        if os.geteuid() == 0:  # the server programs refuse to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, cwd=self.root, capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{program} failed:\n{result.stdout}{result.stderr}"
        return result.stdout

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self.run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def sql(self, query: str, database: str = DATABASE) -> str:
        """What ``query`` answers, as psql prints it unaligned."""
        address = ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database]
        return self.run("psql", *address, "-X", "-q", "-A", "-t", "-c", query).strip()

    def url(self) -> str:
        return f"{URL_SCHEME}://postgres@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def name(self) -> str:
        """As the service names a standby, in its log and metrics."""
        return f"127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Server, Server]]:
    """A primary, migrated, and its hot standby, applying each commit ``DELAY`` s late."""
    programs = server_programs()
    root = Path(tempfile.mkdtemp(prefix="standby-tests-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    primary = Server(programs, root, "primary")
    standby = Server(programs, root, "standby")
    primary.run("initdb", "-D", str(primary.data), "-U", "postgres", "--auth=trust", "-N")
    try:
        primary.start()
        primary.sql(f'CREATE DATABASE "{DATABASE}"', database="postgres")
        command.upgrade(alembic_config(primary.url()), "head")
        # A copy of the primary, its settings for streaming written (-R), at once (-c fast).
        address = ["-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres"]
        copy = ["-D", str(standby.data), "-R", "-X", "stream", "-c", "fast"]
        primary.run("pg_basebackup", *address, *copy)
        with (standby.data / "postgresql.auto.conf").open("a") as settings:
            settings.write(f"recovery_min_apply_delay = '{DELAY}s'\n")
        standby.start()
        assert standby.sql("SELECT pg_is_in_recovery()") == "t"
        yield primary, standby
    finally:
        for server in (standby, primary):
            if (server.data / "postmaster.pid").is_file():
                server.stop()
        collect_dropped_connections()
        shutil.rmtree(root, ignore_errors=True)


def collect_dropped_connections() -> None:
    """A connection the driver opened to a standby as it shut down, which the pool then
    dropped without closing it, is the garbage collector's: collect it here, quietly,
    rather than let its ResourceWarning fail whichever later test the collector runs in."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def test_standbys_are_read_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    urls = [f"{URL_SCHEME}://postgres@standby-{n}:5432/service" for n in (1, 2)]
    monkeypatch.setenv("DATABASE_REPLICA_URLS", f" {urls[0]} ,{urls[1]},")

    assert Settings(_env_file=None).database_replica_urls == urls


def test_a_standby_url_for_another_driver_is_refused_by_its_number() -> None:
    given = f"{URL_SCHEME}://postgres@standby/service,mysql://root@standby/service"

    with pytest.raises(ValidationError) as error:
        Settings(_env_file=None, database_replica_urls=given)  # type: ignore[arg-type]

    assert problems(error.value) == [
        f"DATABASE_REPLICA_URLS: the URL number 2 names 'mysql'; this service runs on {URL_SCHEME}://..."
    ]


def test_the_openapi_document_offers_the_token(settings: Settings) -> None:
    for path, operations in create_app(settings).openapi()["paths"].items():
        for method, operation in operations.items():
            assert POSITION_HEADER in [p["name"] for p in operation["parameters"]], (method, path)
            if method.upper() in {"DELETE", "PATCH", "POST", "PUT"}:
                answers = [a for status, a in operation["responses"].items() if status[0] == "2"]
                assert all(POSITION_HEADER in answer["headers"] for answer in answers)


def database_of(app: FastAPI) -> ReplicatedDatabase:
    database: ReplicatedDatabase = app.state.database
    return database


async def in_rotation(app: FastAPI) -> bool:
    return all(standby.in_rotation for standby in database_of(app).standbys)


async def until(condition: Callable[[], Awaitable[bool]], seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


@asynccontextmanager
async def serving(
    primary: Server, standby_url: str, settings: Settings, **changes: Any
) -> AsyncIterator[FastAPI]:
    """The service on ``primary``, reading from the standby at ``standby_url`` once it is
    in rotation; what it stored is deleted afterwards."""
    given = {
        "database_url": primary.url(),
        "database_replica_urls": [standby_url],
        "db_replica_wait": 0.02,
        "db_replica_check_interval": 0.1,
        **changes,
    }
    try:
        async with running_app(settings, **given) as app:
            await until(lambda: in_rotation(app))
            yield app
    finally:
        await empty_database(primary.url())
        collect_dropped_connections()


@pytest.fixture
async def replicated_app(
    servers: tuple[Server, Server], settings: Settings
) -> AsyncIterator[FastAPI]:
    """The service on the primary, reading from the standby once it is in rotation."""
    primary, standby = servers
    async with serving(primary, standby.url(), settings) as app:
        yield app


def reads_on(app: FastAPI) -> tuple[int, int]:
    """How many read-only units of work the standby, and the primary, served."""
    database = database_of(app)
    (standby,) = database.standbys
    return standby.reads, database.primary_reads


async def create_then_read(client: AsyncClient, name: str, *, send_token: bool) -> tuple[int, str]:
    """Create an item, then read it at once; the read's status, and the token given."""
    created = await client.post("/items", json={"name": name})
    assert created.status_code == 201, created.text
    token = created.headers[POSITION_HEADER]
    headers = {POSITION_HEADER: token} if send_token else {}
    client.cookies.clear()
    read = await client.get(f"/items/{created.json()['id']}", headers=headers)
    assert read.status_code in {200, 404}, read.text
    return read.status_code, token


async def test_a_client_that_sends_its_token_back_reads_every_write(
    replicated_app: FastAPI, servers: tuple[Server, Server]
) -> None:
    async with client_of(replicated_app) as client:
        statuses = [
            (await create_then_read(client, f"token-{n}", send_token=True))[0] for n in range(PAIRS)
        ]
    assert statuses.count(404) == 0
    assert statuses.count(200) == PAIRS


async def test_without_the_token_reads_from_the_standby_are_stale(
    replicated_app: FastAPI, servers: tuple[Server, Server]
) -> None:
    before, _ = reads_on(replicated_app)
    async with client_of(replicated_app) as client:
        statuses = [
            (await create_then_read(client, f"stale-{n}", send_token=False))[0] for n in range(50)
        ]
    # The standby applies each commit DELAY seconds late: nearly every read misses.
    assert statuses.count(404) >= 45, statuses
    assert reads_on(replicated_app)[0] - before >= 45


async def test_the_cookie_carries_the_token_for_a_client_that_keeps_cookies(
    replicated_app: FastAPI,
) -> None:
    async with client_of(replicated_app) as client:
        for n in range(20):
            created = await client.post("/items", json={"name": f"cookie-{n}"})
            assert created.status_code == 201
            cookie = created.headers["set-cookie"]
            assert cookie.startswith(f"{POSITION_COOKIE}={created.headers[POSITION_HEADER]};")
            assert "HttpOnly" in cookie
            assert "SameSite=Lax" in cookie
            read = await client.get(f"/items/{created.json()['id']}")
            assert read.status_code == 200, read.text


async def test_reads_go_to_the_standby_once_it_has_replayed_the_write(
    replicated_app: FastAPI, servers: tuple[Server, Server]
) -> None:
    primary, standby = servers
    async with client_of(replicated_app) as client:
        created = await client.post("/items", json={"name": "replayed"})
        token = created.headers[POSITION_HEADER]
        item = created.json()["id"]
        await asyncio.sleep(DELAY + 0.5)
        before = reads_on(replicated_app)
        client.cookies.clear()
        for _ in range(10):
            read = await client.get(f"/items/{item}", headers={POSITION_HEADER: token})
            assert read.status_code == 200
    after = reads_on(replicated_app)
    assert after[0] - before[0] == 10
    assert after[1] - before[1] == 0
    # The service's pool keeps its connections to the standby open (psql is this one).
    assert int(standby.sql(SERVICE_CONNECTIONS)) >= 1
    # Writes never go to the standby: it is still one, and the row came from the primary.
    assert standby.sql("SELECT pg_is_in_recovery()") == "t"
    assert primary.sql("SELECT count(*) FROM items WHERE name = 'replayed'") == "1"
{% if cookiecutter.tracing %}


async def test_a_read_on_the_standby_names_it_in_its_trace(
    replicated_app: FastAPI,
    servers: tuple[Server, Server],
    spans: Callable[[], list[ReadableSpan]],
) -> None:
    _primary, standby = servers
    async with client_of(replicated_app) as client:
        read = await client.get("/items")

    assert read.status_code == 200
    found = spans()
    (unit,) = [span for span in found if span.name == "unit of work GET /items"]
    assert unit.attributes is not None
    assert unit.attributes["db.standby"] == standby.name
    assert unit.context is not None
    ports = {
        span.attributes["server.port"]
        for span in found
        if span.parent is not None and span.parent.span_id == unit.context.span_id
        if span.attributes is not None
    }
    assert ports == {standby.port}
{% endif %}


# Positions from the future and the past, and what is no position at all.
MADE_UP = ["FFFFFFFF/FFFFFFFF", "0/0", "not a position", "1/" + "F" * 200, "-1/-1", "", "0/1;0/2"]


async def test_a_token_made_up_is_no_error(
    replicated_app: FastAPI, servers: tuple[Server, Server]
) -> None:
    primary, _ = servers
    item = primary.sql("INSERT INTO items (name) VALUES ('old') RETURNING id")
    await asyncio.sleep(DELAY + 0.5)
    async with client_of(replicated_app) as client:
        for token in MADE_UP:
            started = time.monotonic()
            by_header = await client.get(f"/items/{item}", headers={POSITION_HEADER: token})
            client.cookies.set(POSITION_COOKIE, token)
            by_cookie = await client.get(f"/items/{item}")
            client.cookies.clear()
            # A position from the future costs its reads the bounded wait, then the primary.
            assert time.monotonic() - started < 1, token
            assert by_header.status_code == 200, (token, by_header.text)
            assert by_cookie.status_code == 200, (token, by_cookie.text)


async def test_the_standby_stopped_mid_run_costs_no_5xx(
    replicated_app: FastAPI, servers: tuple[Server, Server]
) -> None:
    primary, standby = servers
    primary.sql("INSERT INTO items (name) SELECT 'kept-' || n FROM generate_series(1, 20) n")
    ids = primary.sql("SELECT string_agg(id::text, ',') FROM items").split(",")
    await asyncio.sleep(DELAY + 0.5)
    statuses: list[int] = []
    stopping = True

    async def reader(client: AsyncClient) -> None:
        n = 0
        while stopping:
            n += 1
            response = await client.get(f"/items/{ids[n % len(ids)]}")
            statuses.append(response.status_code)

    async with client_of(replicated_app, raise_app_exceptions=False) as client:
        readers = [asyncio.create_task(reader(client)) for _ in range(8)]
        await asyncio.sleep(1)
        on_standby, _ = reads_on(replicated_app)
        await asyncio.to_thread(standby.stop)
        await asyncio.sleep(1.5)
        stopping = False
        await asyncio.gather(*readers)
        assert not await in_rotation(replicated_app)
        served_after = len(statuses)
        await asyncio.to_thread(standby.start)
        # Retried later: back in rotation once a check finds it well.
        await until(lambda: in_rotation(replicated_app))
        assert (await client.get(f"/items/{ids[0]}")).status_code == 200
    assert on_standby > 0
    assert served_after > 100
    assert set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}


def fresh_names(session: Session) -> list[str]:
    return list(session.scalars(select(Item.name).where(Item.name == "fresh")))


async def test_background_work_reads_from_the_standby_unless_it_asks_for_the_primary(
    replicated_app: FastAPI, servers: tuple[Server, Server]
) -> None:
    primary, _ = servers
    database = database_of(replicated_app)
    primary.sql("INSERT INTO items (name) VALUES ('fresh')")

    async with database.open_session(writes=False) as session:
        on_standby = await database.run(session, fresh_names)
    async with database.open_session(writes=False, primary=True) as session:
        on_primary = await database.run(session, fresh_names)

    # The standby applies the insert DELAY seconds late; the primary has it.
    assert on_standby == []
    assert on_primary == ["fresh"]


async def test_a_standby_lagging_past_the_bound_leaves_the_rotation_until_it_catches_up(
    servers: tuple[Server, Server], settings: Settings
) -> None:
    primary, standby = servers
    bound = {"db_replica_max_lag": DELAY / 3}
    async with serving(primary, standby.url(), settings, **bound) as app, client_of(app) as client:
        # Writes keep coming: the standby replays each one DELAY seconds late.
        deadline = time.monotonic() + 10
        n = 0
        while await in_rotation(app):
            assert time.monotonic() < deadline, "the lagging standby stayed in rotation"
            assert (await client.post("/items", json={"name": f"lag-{n}"})).status_code == 201
            n += 1
            await asyncio.sleep(0.05)
        # Out of rotation, reads without a token go to the primary: nothing is stale.
        for n in range(10):
            created = await client.post("/items", json={"name": f"while-out-{n}"})
            client.cookies.clear()
            assert (await client.get(f"/items/{created.json()['id']}")).status_code == 200
        # Once the writes stop it catches up, and is back.
        await until(lambda: in_rotation(app))


async def test_a_read_with_a_token_does_not_wait_for_a_standby_known_to_lag_too_far(
    servers: tuple[Server, Server], settings: Settings
) -> None:
    primary, standby = servers
    wait = DELAY * 2 / 3
    waiting = {"db_replica_wait": wait}
    # Replay paused, the standby's lag only grows while the primary writes: the checks'
    # estimate of it cannot dip back under the wait between two of them, as it can while
    # a loaded machine spaces the checks of a standby that replays.
    standby.sql("SELECT pg_wal_replay_pause()")
    try:
        async with (
            serving(primary, standby.url(), settings, **waiting) as app,
            client_of(app) as client,
        ):
            (lagging,) = database_of(app).standbys
            deadline = time.monotonic() + 10
            n = 0
            while lagging.lag <= wait:
                assert time.monotonic() < deadline, "the standby's check never saw it lag"
                created = await client.post("/items", json={"name": f"behind-{n}"})
                assert created.status_code == 201
                n += 1
                await asyncio.sleep(0.05)
            # Known to lag by more than the wait: a read that must see its write goes to
            # the primary at once, instead of holding a standby connection for the wait.
            for n in range(10):
                before = reads_on(app)
                started = time.monotonic()
                status, _ = await create_then_read(client, f"at-once-{n}", send_token=True)
                assert status == 200
                assert time.monotonic() - started < wait / 2
                assert reads_on(app) == (before[0], before[1] + 1)  # the primary's read
    finally:
        standby.sql("SELECT pg_wal_replay_resume()")


async def test_a_standby_cut_off_from_its_primary_leaves_the_rotation(
    servers: tuple[Server, Server], settings: Settings
) -> None:
    """A standby whose WAL receiver can no longer reach the primary (a partition, rotated
    credentials) has replayed all it received, yet grows stale while the primary writes:
    its lag, counted from where the primary was, takes it out of rotation."""
    primary, standby = servers
    conninfo = standby.sql("SHOW primary_conninfo", database="postgres")
    bound = {"db_replica_max_lag": DELAY * 2}  # past the standby's own delay
    try:
        async with (
            serving(primary, standby.url(), settings, **bound) as app,
            client_of(app) as client,
        ):
            cut = "host=127.0.0.1 port=1 user=postgres"
            standby.sql(f"ALTER SYSTEM SET primary_conninfo = '{cut}'", database="postgres")
            standby.sql("SELECT pg_reload_conf()", database="postgres")
            deadline = time.monotonic() + 15
            n = 0
            while await in_rotation(app):
                assert time.monotonic() < deadline, "the standby cut off stayed in rotation"
                created = await client.post("/items", json={"name": f"cut-off-{n}"})
                assert created.status_code == 201
                n += 1
                await asyncio.sleep(0.1)
            (cut_off,) = database_of(app).standbys
            assert cut_off.lag > DELAY * 2
            created = await client.post("/items", json={"name": "after the cut"})
            client.cookies.clear()
            assert (await client.get(f"/items/{created.json()['id']}")).status_code == 200
    finally:
        restored = conninfo.replace("'", "''")
        standby.sql(f"ALTER SYSTEM SET primary_conninfo = '{restored}'", database="postgres")
        standby.sql("SELECT pg_reload_conf()", database="postgres")


async def test_the_token_of_a_write_committed_without_waiting_for_its_flush_is_past_it(
    servers: tuple[Server, Server], settings: Settings
) -> None:
    """With ``synchronous_commit`` off a commit returns before its record is written: the
    token is where WAL is inserted, past the commit record, so a standby that replayed
    up to it has the write (where WAL was written, the commit may lie beyond)."""
    primary, standby = servers
    primary.sql("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
    primary.sql(f'ALTER DATABASE "{DATABASE}" SET synchronous_commit = off', database="postgres")
    try:
        async with serving(primary, standby.url(), settings) as app, client_of(app) as client:
            start = primary.sql("SELECT pg_current_wal_insert_lsn()")
            created = await client.post("/items", json={"name": "unflushed"})
            token = parse_position(created.headers[POSITION_HEADER])
            item = created.json()["id"]
            xid = primary.sql(f"SELECT xmin FROM items WHERE id = {item}")  # noqa: S608
            primary.sql("SELECT pg_switch_wal()")  # all of it flushed, to be read
            commit = primary.sql(
                f"SELECT end_lsn FROM pg_get_wal_records_info('{start}', pg_current_wal_lsn())"  # noqa: S608
                f" WHERE record_type LIKE 'COMMIT%' AND xid = {xid}"
            )
    finally:
        primary.sql(f'ALTER DATABASE "{DATABASE}" RESET synchronous_commit', database="postgres")
    assert token is not None
    assert token >= parse_position(commit)  # type: ignore[operator]
{% if cookiecutter.idempotency_keys %}


async def test_a_retried_keyed_write_gets_a_token_with_its_stored_answer(
    replicated_app: FastAPI,
) -> None:
    keyed = {"Idempotency-Key": "replayed-with-a-token"}
    async with client_of(replicated_app) as client:
        first = await client.post("/items", json={"name": "keyed"}, headers=keyed)
        client.cookies.clear()
        again = await client.post("/items", json={"name": "keyed"}, headers=keyed)
        token = again.headers[POSITION_HEADER]
        client.cookies.clear()
        read = await client.get(f"/items/{again.json()['id']}", headers={POSITION_HEADER: token})

    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["set-cookie"].startswith(f"{POSITION_COOKIE}={token};")
    assert parse_position(token) >= parse_position(first.headers[POSITION_HEADER])  # type: ignore[operator]
    assert read.status_code == 200
{% endif %}


class RoundRobin(TCPProxy):
    """One address in front of several servers, each connection to the next of them: what
    a Kubernetes read-only Service or HAProxy is to a set of standbys."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.turn = 0

    async def forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.turn += 1
        port = self.ports[self.turn % len(self.ports)]
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", port)

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except OSError:
                pass
            finally:
                sink.close()

        await asyncio.gather(pump(reader, server_writer), pump(server_reader, writer))


def copy_of(primary: Server, name: str) -> Server:
    """A new hot standby of ``primary``, started, applying every commit at once."""
    copy = Server(primary.programs, primary.root, name)
    address = ["-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres"]
    primary.run("pg_basebackup", *address, "-D", str(copy.data), "-R", "-X", "stream", "-c", "fast")
    copy.start()
    return copy


@pytest.fixture(scope="module")
def prompt_standby(servers: tuple[Server, Server]) -> Iterator[Server]:
    """A second hot standby of the primary, applying every commit at once."""
    primary, _ = servers
    prompt = copy_of(primary, "prompt")
    try:
        yield prompt
    finally:
        prompt.stop()


async def test_one_address_in_front_of_several_standbys_serves_no_stale_read(
    servers: tuple[Server, Server], prompt_standby: Server, settings: Settings
) -> None:
    """Which standby a connection reaches is the address's choice: a read that must see a
    write asks how far its own connection's standby has replayed."""
    primary, delayed = servers
    async with RoundRobin([delayed.port, prompt_standby.port]) as address:
        url = f"{URL_SCHEME}://postgres@127.0.0.1:{address.port}/{DATABASE}"
        async with serving(primary, url, settings) as app, client_of(app) as client:
            # Reads at once: the pool keeps connections to either standby, lent in turn.
            await asyncio.gather(*(client.get("/items?limit=1") for _ in range(4)))
            statuses = []
            for n in range(10):
                created = await client.post("/items", json={"name": f"behind-one-address-{n}"})
                token = {POSITION_HEADER: created.headers[POSITION_HEADER]}
                await asyncio.sleep(0.3)  # checks, on either standby, ran meanwhile
                client.cookies.clear()
                read = await client.get(f"/items/{created.json()['id']}", headers=token)
                statuses.append(read.status_code)
            (standby,) = database_of(app).standbys
    assert statuses == [200] * 10
    assert standby.reads > 0  # some of them on the standbys


async def test_a_token_past_the_primary_costs_one_read_on_the_primary(
    servers: tuple[Server, Server], settings: Settings
) -> None:
    """A made-up token ahead of the primary cannot be waited for: it holds no standby
    connection, and reads from the primary at once."""
    primary, standby = servers
    item = primary.sql("INSERT INTO items (name) VALUES ('old') RETURNING id")
    await asyncio.sleep(DELAY + 0.5)
    waiting = {"db_replica_wait": DELAY}
    async with (
        serving(primary, standby.url(), settings, **waiting) as app,
        client_of(app) as client,
    ):
        before = reads_on(app)
        started = time.monotonic()
        read = await client.get(f"/items/{item}", headers={POSITION_HEADER: "FFFFFFFF/FFFFFFFF"})
        took = time.monotonic() - started
        after = reads_on(app)

    assert read.status_code == 200
    assert took < DELAY / 3
    assert after == (before[0], before[1] + 1)  # the primary's read, none on the standby


async def test_a_read_whose_standby_has_no_free_connection_reads_from_the_primary(
    servers: tuple[Server, Server], settings: Settings
) -> None:
    primary, standby = servers
    item = primary.sql("INSERT INTO items (name) VALUES ('old') RETURNING id")
    await asyncio.sleep(DELAY + 0.5)
    small = {"db_pool_size": 1, "db_max_overflow": 0, "db_pool_timeout": 2}
    async with serving(primary, standby.url(), settings, **small) as app, client_of(app) as client:
        (busy,) = database_of(app).standbys
        held = await busy.begin(writes=False, name="a long read")
        try:
            started = time.monotonic()
            read = await client.get(f"/items/{item}")
            took = time.monotonic() - started
        finally:
            await busy.end(held, commit=False)

    assert read.status_code == 200
    assert took < 1  # not the pool timeout: the primary was idle


async def test_reads_cancelled_while_waiting_for_a_standby_give_its_connections_back(
    servers: tuple[Server, Server], settings: Settings
) -> None:
    """A read waiting for its standby to replay a write, cancelled (a request timeout, a
    client gone), leaves no place of the standby's pool taken."""
    primary, standby = servers
    small = {"db_pool_size": 2, "db_max_overflow": 0, "db_pool_timeout": 1, "db_replica_wait": 5}
    async with serving(primary, standby.url(), settings, **small) as app, client_of(app) as client:
        ids = []
        for n in range(4):
            created = await client.post("/items", json={"name": f"cancelled-{n}"})
            ids.append(created.json()["id"])
            token = {POSITION_HEADER: created.headers[POSITION_HEADER]}
            client.cookies.clear()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(client.get(f"/items/{ids[-1]}", headers=token), 0.2)
        await asyncio.sleep(DELAY + 0.5)  # every write replayed
        (waited_on,) = database_of(app).standbys
        before = waited_on.reads
        statuses = [(await client.get(f"/items/{item}")).status_code for item in ids]

    assert statuses == [200] * len(ids)
    assert waited_on.reads - before == len(ids)  # each served there: a place was free


async def test_a_promoted_standby_leaves_the_rotation(
    servers: tuple[Server, Server], settings: Settings
) -> None:
    """The standby promoted here is this test's own: the module's standby stays one, in
    whatever order the tests run."""
    primary, _ = servers
    promoted = copy_of(primary, "promoted")
    try:
        async with serving(primary, promoted.url(), settings) as app, client_of(app) as client:
            item = primary.sql("INSERT INTO items (name) VALUES ('before promotion') RETURNING id")
            promoted.run("pg_ctl", "-D", str(promoted.data), "-w", "promote")
            assert promoted.sql("SELECT pg_is_in_recovery()") == "f"

            async def out() -> bool:
                return not await in_rotation(app)

            await until(out)
            client.cookies.clear()
            before = reads_on(app)
            read = await client.get(f"/items/{item}")
            after = reads_on(app)
    finally:
        promoted.stop()
    assert read.status_code == 200
    assert after == (before[0], before[1] + 1)  # out of rotation: the primary served it
