"""Behind PgBouncer in transaction mode, the usual way many replicas share one PostgreSQL.

With ``?plugin=pgbouncer`` in its URL (``db/pgbouncer.py``) the service works
through a real PgBouncer, which
these tests start on a free port with a configuration they write: many
concurrent writes each read back, read-your-writes from a connection that
bypasses PgBouncer, and no failed request after the server dropped every
connection PgBouncer held. They need the ``pgbouncer`` program (Debian's package of that
name); without it they are skipped with a loud reason — unless ``CI`` is set.
"""

import asyncio
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import make_url, text

from {{ cookiecutter.package_name }}.settings import Settings

from .support import (
    ask_the_database,
    client_of,
    create_items,
    drop_the_services_connections,
    empty_tables,
    free_port,
    running_app,
    wait_until_listening,
)

WRITERS = 150


def pgbouncer_program() -> str:
    program = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
    if program is None:
        reason = "pgbouncer is not installed (Debian: apt-get install pgbouncer)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must test the service behind PgBouncer")
        pytest.skip(f"SKIPPING THE PGBOUNCER TESTS: {reason}")
    return program


@pytest.fixture(scope="module")
def pgbouncer_url(database_url: str) -> Iterator[str]:
    """The test database's URL, through a PgBouncer in transaction mode."""
    program = pgbouncer_program()
    server = make_url(database_url)
    port = free_port()
    # PgBouncer refuses to run as root; it then switches to the postgres user,
    # who must be able to read what is written here.
    as_root = os.geteuid() == 0
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "pgbouncer.ini"
        users = Path(folder) / "users.txt"
        users.write_text(f'"{server.username}" "{server.password or ""}"\n')
        config.write_text(
            "[databases]\n"
            f"* = host={server.host} port={server.port or 5432}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {users}\n"
            "pool_mode = transaction\nmax_client_conn = 500\ndefault_pool_size = 10\n"
            # Check a server connection before lending it again, at once.
            "server_check_delay = 0\n"
        )
        for path in (Path(folder), config, users):
            path.chmod(0o755 if path.is_dir() else 0o644)
        command = [program, *(["-u", "postgres"] if as_root else []), str(config)]
        log = Path(folder) / "pgbouncer.log"
        with log.open("wb") as output:
            bouncer = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        try:
            wait_until_listening(port, bouncer, log, "PgBouncer")
            bounced = server.set(host="127.0.0.1", port=port, query={"plugin": "pgbouncer"})
            yield bounced.render_as_string(hide_password=False)
        finally:
            bouncer.terminate()
            bouncer.wait(timeout=10)


@pytest.fixture
async def bounced_app(pgbouncer_url: str, settings: Settings) -> AsyncIterator[FastAPI]:
    """The service connected through PgBouncer, as its URL says."""
    async with running_app(settings, database_url=pgbouncer_url) as app:
        yield app
        await empty_tables(app.state.database.engine)


async def test_concurrent_writes_each_read_back_through_pgbouncer(bounced_app: FastAPI) -> None:
    async with client_of(bounced_app) as client:

        async def write_and_read(n: int) -> tuple[int, int]:
            created = await client.post("/items", json={"name": f"bounced-{n}"})
            if created.status_code != 201:
                return created.status_code, 0
            read = await client.get(f"/items/{created.json()['id']}")
            return created.status_code, read.status_code

        answers = await asyncio.gather(*(write_and_read(n) for n in range(WRITERS)))

    assert answers == [(201, 200)] * WRITERS


async def test_read_your_writes_through_pgbouncer(bounced_app: FastAPI, database_url: str) -> None:
    async with client_of(bounced_app) as client:
        created = await client.post("/items", json={"name": "seen"})

    assert created.status_code == 201
    count = text("SELECT count(*) FROM items WHERE name = 'seen'")
    assert await ask_the_database(database_url, count) == 1  # a direct connection sees it


async def test_requests_succeed_after_the_server_drops_pgbouncers_connections(
    bounced_app: FastAPI, database_url: str
) -> None:
    async with client_of(bounced_app) as client:
        await create_items(client, "before", 3)
        # PgBouncer's server connections carry the service's application_name.
        await drop_the_services_connections(database_url)
        await create_items(client, "after", 5)
        listed = await client.get("/items")

    assert listed.status_code == 200
    assert len(listed.json()["items"]) == 8
