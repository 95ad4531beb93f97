{% set is_pg = cookiecutter.database == "postgresql" %}
"""The real server: uvicorn serves the app, and SIGTERM stops it with no connection left open."""

import asyncio
import re
import signal
import socket
import time
from pathlib import Path

import httpx2
{% if not is_pg %}
from sqlalchemy import make_url
{% endif %}

{% if is_pg %}
from {{ cookiecutter.package_name }}.db.engine import APPLICATION_NAME

from .support import CONNECTION_COUNT, ask_the_database, empty_database, start_server


def connections_of_the_service(database_url: str) -> int:
    """The service's connections to the test database, as the server sees them."""
    return asyncio.run(ask_the_database(database_url, CONNECTION_COUNT, name=APPLICATION_NAME))
{% else %}
from .support import empty_database, start_server


def wal_file(database_url: str) -> Path:
    database = make_url(database_url).database
    assert database is not None
    return Path(f"{database}-wal")
{% endif %}


def exchange(connection: socket.socket, request: bytes) -> tuple[int, bytes]:
    """Send one HTTP/1.1 request on an open connection; read its whole response."""
    connection.sendall(request)
    return read_response(connection)


def read_response(connection: socket.socket) -> tuple[int, bytes]:
    """The status and body of the next HTTP/1.1 response on ``connection``."""
    head, body = read_message(connection)
    assert re.search(rb"content-length: (\d+)", head, re.IGNORECASE), head
    return int(head.split()[1]), body


def read_message(connection: socket.socket) -> tuple[bytes, bytes]:
    """The head (status line and headers) and body of the next response on ``connection``."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = connection.recv(65536)
        assert chunk, "the server closed the connection"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
    while length is not None and len(body) < int(length.group(1)):
        body += connection.recv(65536)
    return head, body


def test_hostile_requests_keep_the_connection_usable(database_url: str, tmp_path: Path) -> None:
    server, port = start_server(database_url, tmp_path / "server.log")
    surrogate = b'{"name": "\\ud800"}'
    requests = [
        b"GET /items/99999999999999999999999 HTTP/1.1\r\nHost: test\r\n\r\n",
        b"POST /items HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(surrogate)}\r\n\r\n".encode()
        + surrogate,
        b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n",
    ]
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
            answers = [exchange(connection, request) for request in requests]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    assert [status for status, _ in answers] == [422, 422, 200]
    assert all(body.startswith(b'{"detail":') for _, body in answers[:2])


def head_of(connection: socket.socket, request: bytes) -> bytes:
    """The status line and headers of the answer to ``request``, lower-cased."""
    connection.sendall(request)
    head, _ = read_message(connection)
    return head.lower()


def test_a_request_without_one_valid_host_is_refused(database_url: str, tmp_path: Path) -> None:
    """RFC 9112: an HTTP/1.1 request without a Host header, with two, or with one that
    names no host, is answered 400; the connection stays usable. No answer names the
    server."""
    server, port = start_server(database_url, tmp_path / "server.log")
    requests = [
        b"GET /health HTTP/1.1\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: a b\r\n\r\n",
        b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n",
    ]
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
            heads = [head_of(connection, request) for request in requests]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    assert [int(head.split()[1]) for head in heads] == [400, 400, 400, 200]
    assert not any(b"\r\nserver:" in head for head in heads)
    assert all(b"\r\nx-content-type-options: nosniff" in head for head in heads)


def test_the_server_bounds_its_connections_and_closes_idle_ones(
    database_url: str, tmp_path: Path
) -> None:
    """Past WEB_MAX_CONCURRENCY connections a request is answered 503 at once; a
    keep-alive connection idle for WEB_KEEP_ALIVE_TIMEOUT seconds is closed."""
    env = {"WEB_MAX_CONCURRENCY": "2", "WEB_KEEP_ALIVE_TIMEOUT": "0.5"}
    server, port = start_server(database_url, tmp_path / "server.log", env=env)
    request = b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as idle:
            assert int(head_of(idle, request).split()[1]) == 200
            time.sleep(1)
            idle.settimeout(0.2)  # the default timeout (5 s) would close it while we wait
            try:
                closed = idle.recv(1) == b""
            except TimeoutError:
                closed = False
        with socket.create_connection(("127.0.0.1", port), timeout=10) as first:
            answers = [int(head_of(first, request).split()[1])]  # alone: served
            with socket.create_connection(("127.0.0.1", port), timeout=10) as second:
                time.sleep(0.2)  # the server has both: as many as the limit
                answers.append(int(head_of(second, request).split()[1]))
        time.sleep(0.3)  # both are gone
        with socket.create_connection(("127.0.0.1", port), timeout=10) as again:
            answers.append(int(head_of(again, request).split()[1]))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    assert closed
    assert answers == [200, 503, 200]


def test_sigterm_stops_the_server_cleanly(database_url: str, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    server, port = start_server(database_url, log)
    base_url = f"http://127.0.0.1:{port}"
    try:
        created = httpx2.post(f"{base_url}/items", json={"name": "served"})
        assert created.status_code == 201
        assert httpx2.get(f"{base_url}/items/{created.json()['id']}").status_code == 200
        assert httpx2.delete(f"{base_url}/items/{created.json()['id']}").status_code == 204
{% if is_pg %}
        assert connections_of_the_service(database_url) >= 1
{% else %}
        assert wal_file(database_url).exists()  # the server holds a connection
{% endif %}
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    # After its graceful shutdown uvicorn re-raises the signal, as a process should.
    logged = log.read_text()
    assert server.returncode in {0, -signal.SIGTERM}, logged
    assert "Application shutdown complete" in logged
{% if is_pg %}
    assert connections_of_the_service(database_url) == 0
{% else %}
    # SQLite removes the write-ahead log when the last connection closes.
    assert not wal_file(database_url).exists()
{% endif %}
    # What the served requests committed (the delete's record) is not the next test's.
    asyncio.run(empty_database(database_url))
