{% set is_pg = cookiecutter.database == "postgresql" %}
"""Several worker processes in one server (see workers.py): each checks its settings,
a worker that cannot start stops them all, and SIGTERM lets every one finish."""

import asyncio
import signal
import socket
import time
from pathlib import Path

from sqlalchemy import text

from {{ cookiecutter.package_name }}.__main__ import PROG
from {{ cookiecutter.package_name }}.settings import URL_SCHEME

from .support import ask_the_database, empty_database, start_server
{% if is_pg %}
from .test_server import connections_of_the_service, read_response
{% else %}
from .test_server import read_response, wal_file
{% endif %}
from .test_startup import serve


def test_a_bad_setting_stops_every_worker_with_one_line(tmp_path: Path) -> None:
    result = serve(tmp_path, DATABASE_URL="garbage", WEB_CONCURRENCY="2")

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"{PROG}: cannot start: DATABASE_URL: is not a database URL; expected {URL_SCHEME}://...",
    ]


def test_a_worker_that_cannot_start_stops_the_server_with_status_3(
    tmp_path: Path, database_url: str
) -> None:
    # Every process of the server imports this first: the workers' startup fails.
    (tmp_path / "sitecustomize.py").write_text(
        "from {{ cookiecutter.package_name }}.db import unit\n\n\n"
        "def refuse(*args, **kwargs):\n"
        "    raise RuntimeError('no database today')\n\n\n"
        "unit.Database.__init__ = refuse\n"
    )

    result = serve(tmp_path, "--workers", "2", DATABASE_URL=database_url, PYTHONPATH=str(tmp_path))

    assert result.returncode == 3, result.stderr
    assert "no database today" in result.stderr


def test_sigterm_lets_every_worker_finish_its_requests(database_url: str, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    server, port = start_server(database_url, log, "--workers", "2")
    body = b'{"name": "in flight"}'
    head = (
        b"POST /items HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
    )
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
            connection.sendall(head + body[:5])
            time.sleep(1)  # a worker is reading the request
            server.send_signal(signal.SIGTERM)
            time.sleep(1)  # the workers are stopping, and wait for it
            assert server.poll() is None
            connection.sendall(body[5:])
            status, answer = read_response(connection)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    try:
        logged = log.read_text()
        assert status == 201, answer
        assert server.returncode == 0, logged
        assert logged.count("Application shutdown complete") == 2
        assert "in all 2 workers (WEB_CONCURRENCY)" in logged
        committed = text("SELECT count(*) FROM items WHERE name = 'in flight'")
        assert asyncio.run(ask_the_database(database_url, committed)) == 1
{% if is_pg %}
        assert connections_of_the_service(database_url) == 0
{% else %}
        assert not wal_file(database_url).exists()
{% endif %}
    finally:
        asyncio.run(empty_database(database_url))
