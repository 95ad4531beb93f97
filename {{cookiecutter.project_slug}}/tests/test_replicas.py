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
from pathlib import Path

import pytest
from alembic import command
from fastapi import FastAPI
from httpx2 import AsyncClient
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from {{ cookiecutter.package_name }}.consistency import (
    POSITION_COOKIE,
    POSITION_HEADER,
)
from {{ cookiecutter.package_name }}.db.replicas import ReplicatedDatabase
from {{ cookiecutter.package_name }}.items.models import Item
from {{ cookiecutter.package_name }}.settings import (
    URL_SCHEME,
    Settings,
    problems,
)

from .support import alembic_config, client_of, empty_database, free_port, running_app

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


@pytest.fixture
async def replicated_app(
    servers: tuple[Server, Server], settings: Settings
) -> AsyncIterator[FastAPI]:
    """The service on the primary, reading from the standby once it is in rotation."""
    primary, standby = servers
    changes = {
        "database_url": primary.url(),
        "database_replica_urls": [standby.url()],
        "db_replica_wait": 0.02,
        "db_replica_check_interval": 0.1,
    }
    async with running_app(settings, **changes) as app:
        await until(lambda: in_rotation(app))
        yield app
    await empty_database(primary.url())
    collect_dropped_connections()


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
    changes = {
        "database_url": primary.url(),
        "database_replica_urls": [standby.url()],
        "db_replica_max_lag": DELAY / 3,
        "db_replica_check_interval": 0.1,
    }
    try:
        async with running_app(settings, **changes) as app, client_of(app) as client:
            await until(lambda: in_rotation(app))
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
    finally:
        await empty_database(primary.url())
        collect_dropped_connections()


async def test_a_read_with_a_token_does_not_wait_for_a_standby_known_to_lag_too_far(
    servers: tuple[Server, Server], settings: Settings
) -> None:
    primary, standby = servers
    wait = DELAY * 2 / 3  # under writes the standby lags about DELAY: more than the wait
    changes = {
        "database_url": primary.url(),
        "database_replica_urls": [standby.url()],
        "db_replica_wait": wait,
        "db_replica_check_interval": 0.1,
    }
    try:
        async with running_app(settings, **changes) as app, client_of(app) as client:
            await until(lambda: in_rotation(app))
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
                started = time.monotonic()
                status, _ = await create_then_read(client, f"at-once-{n}", send_token=True)
                assert status == 200
                assert time.monotonic() - started < wait / 2
    finally:
        await empty_database(primary.url())
        collect_dropped_connections()


async def test_a_promoted_standby_leaves_the_rotation(
    replicated_app: FastAPI, servers: tuple[Server, Server]
) -> None:
    primary, standby = servers
    item = primary.sql("INSERT INTO items (name) VALUES ('before promotion') RETURNING id")
    standby.run("pg_ctl", "-D", str(standby.data), "-w", "promote")
    assert standby.sql("SELECT pg_is_in_recovery()") == "f"

    async def out() -> bool:
        return not await in_rotation(replicated_app)

    await until(out)
    async with client_of(replicated_app) as client:
        client.cookies.clear()
        read = await client.get(f"/items/{item}")
    # The promoted server may never have applied it: the read went to the primary.
    assert read.status_code == 200
