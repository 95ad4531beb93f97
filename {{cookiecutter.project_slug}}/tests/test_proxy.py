"""Behind nginx, as ``deploy/nginx.conf`` configures it: what slow, silent and
oversized clients get, and that none of them reaches the service.

These tests start Debian's nginx (packages ``nginx`` and
``libnginx-mod-http-headers-more-filter``) with the project's own
``deploy/nginx.conf``, changed only in its addresses: it listens on a free port
and passes requests to the service served as its image serves it. The limits
they expect are read from that file, so they follow its numbers when those
change. Without nginx they are skipped with a loud reason — unless ``CI`` is set.
"""

import asyncio
import contextlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import httpx2
import pytest

from {{ cookiecutter.package_name }}.settings import Settings

from .support import empty_database, free_port, start_server, wait_until_listening

CONFIG = Path(__file__).parents[1] / "deploy" / "nginx.conf"
# What the tests change: the addresses, and nothing else.
UPSTREAM = "server app:8000;"
LISTEN = "listen 80 default_server;"
LISTEN_IPV6 = "    listen [::]:80 default_server;\n"
SILENT, SLOW_HEADS, STALLED_BODIES = 2000, 200, 50


def directive(name: str) -> str:
    """The value of the outermost ``name`` directive of deploy/nginx.conf (the http
    level's ``keepalive_timeout``, not the upstream's)."""
    found = re.findall(rf"^( *){name} ([^;]+);", CONFIG.read_text(), re.M)
    assert found, f"deploy/nginx.conf has no {name}"
    outermost = min(len(indent) for indent, _ in found)
    (value,) = [value for indent, value in found if len(indent) == outermost]
    return str(value)


def seconds(name: str) -> float:
    value = directive(name)
    assert value.endswith("s"), f"{name} {value}: the tests read seconds"
    return float(value.removesuffix("s"))


def size(name: str) -> int:
    value = directive(name)
    units = {"k": 1024, "m": 1024 * 1024}
    return int(value.rstrip("km")) * units.get(value[-1], 1)


def nginx_program() -> str:
    program = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    module = directive("load_module")
    if program is None or not Path(module).is_file():
        reason = (
            "nginx or its headers-more module is not installed"
            " (Debian: apt-get install nginx libnginx-mod-http-headers-more-filter)"
        )
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must test the service behind its proxy")
        pytest.skip(f"SKIPPING THE PROXY TESTS: {reason}")
    return program


@contextmanager
def nginx_in_front_of(service_port: int) -> Iterator[int]:
    """nginx with deploy/nginx.conf, passing requests to ``service_port``; its port."""
    program = nginx_program()
    port = free_port()
    config = CONFIG.read_text()
    for old, new in [
        (UPSTREAM, f"server 127.0.0.1:{service_port};"),
        (LISTEN, f"listen 127.0.0.1:{port} default_server;"),
        (LISTEN_IPV6, ""),
    ]:
        assert config.count(old) == 1, f"deploy/nginx.conf no longer says {old.strip()!r}"
        config = config.replace(old, new)
    # nginx's prefix: its configuration and the files it buffers bodies in. As root,
    # its workers run as nobody, who must reach them: not in pytest's private folders.
    with tempfile.TemporaryDirectory(prefix="nginx-") as name:
        folder = Path(name)
        folder.chmod(0o755)
        (folder / "nginx.conf").write_text(config)
        command = [program, "-p", name, "-c", str(folder / "nginx.conf"), "-e", "stderr"]
        command += ["-g", f"daemon off; pid {folder / 'nginx.pid'};"]
        log = folder / "nginx.log"
        with log.open("wb") as output:
            proxy = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        try:
            wait_until_listening(port, proxy, log, "nginx")
            yield port
        finally:
            proxy.terminate()
            proxy.wait(timeout=10)
        complaints = re.findall(r".*\[(?:emerg|alert|crit)\].*", log.read_text())
        assert complaints == []


class Served(NamedTuple):
    port: int
    log: Path


def settled(log: Path) -> str:
    """The service's log once it stopped growing: it writes a request's access line after
    the last byte of the answer, so a client may read the log before its line is there."""
    text = log.read_text()
    while (again := _after_a_moment(log)) != text:
        text = again
    return text


def _after_a_moment(log: Path) -> str:
    time.sleep(0.2)
    return log.read_text()


@pytest.fixture(scope="module")
def served(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The service, served as its image serves it: its port and its log. What the
    tests stored through it is deleted after them."""
    log = tmp_path_factory.mktemp("service") / "server.log"
    server, port = start_server(database_url, log)
    try:
        yield Served(port, log)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        asyncio.run(empty_database(database_url))


@pytest.fixture(scope="module")
def proxy(served: Served) -> Iterator[int]:
    """nginx in front of the served service; its port."""
    with nginx_in_front_of(served.port) as port:
        yield port


def answer_to(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-cased names) and body of the answer to ``request``, sent
    on a connection of its own. It is sent while the answer is read: nginx may answer
    (and stop reading) long before a huge request is sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:

        def send() -> None:
            with contextlib.suppress(OSError):  # refused half-way: the answer counts
                connection.sendall(request)

        sender = threading.Thread(target=send)
        sender.start()
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = connection.recv(65536)
            assert chunk, f"closed without an answer after {received!r}"
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines)
        while len(body) < int(headers.get("content-length", "0")):
            chunk = connection.recv(65536)
            assert chunk, "closed in the middle of the answer"
            body += chunk
        connection.shutdown(socket.SHUT_RDWR)
        sender.join(30)
    return int(status_line.split()[1]), headers, body


def test_a_request_passes_through_with_an_id_and_nothing_naming_the_server(proxy: int) -> None:
    base = f"http://127.0.0.1:{proxy}"
    health = httpx2.get(f"{base}/health")
    traced = httpx2.get(f"{base}/health", headers={"X-Request-ID": "Root=1-5f84c7a5-0e7c"})
    created = httpx2.post(f"{base}/items", json={"name": "through the proxy"})
    read = httpx2.get(f"{base}/items/{created.json()['id']}")

    assert health.status_code == 200
    assert "server" not in health.headers
    assert re.fullmatch(r"[0-9a-f]{32}", health.headers["x-request-id"])  # nginx's own
    assert traced.headers["x-request-id"] == "Root=1-5f84c7a5-0e7c"
    assert created.status_code == 201
    assert read.json()["name"] == "through the proxy"


def test_a_body_as_large_as_the_service_takes_reaches_it(proxy: int) -> None:
    """A body of exactly the limit passes nginx (buffered in its files) and is parsed
    by the service: a 422 for what is not JSON, not a 413."""
    body = b"x" * size("client_max_body_size")
    answer = httpx2.post(
        f"http://127.0.0.1:{proxy}/items",
        content=body,
        headers={"Content-Type": "application/json"},
    )

    assert answer.status_code == 422
    assert "server" not in answer.headers


def test_the_proxys_limits_are_the_services() -> None:
    settings = Settings.model_fields
    assert size("client_max_body_size") == settings["max_request_body"].default
    assert f"larger than {size('client_max_body_size')} bytes" in CONFIG.read_text()
    # nginx lets a connection to the service go before the service could close it.
    upstream = re.search(r"upstream service \{[^}]*keepalive_timeout (\d+)s;", CONFIG.read_text())
    assert upstream is not None
    assert float(upstream.group(1)) < settings["web_keep_alive_timeout"].default
{% if cookiecutter.database == "postgresql" %}
    # The service answers a statement past its timeout before nginx gives up on it.
    assert seconds("proxy_read_timeout") > settings["db_statement_timeout"].default
{% endif %}


def chunked(*sizes: int) -> bytes:
    """A chunked body: a chunk of each of ``sizes`` bytes, then the last chunk."""
    return b"".join(b"%x\r\n%s\r\n" % (n, b"x" * n) for n in sizes) + b"0\r\n\r\n"


LIMIT = size("client_max_body_size")
OVERSIZED = {
    "a 16 MiB header": (
        b"GET /health HTTP/1.1\r\nHost: test\r\nX-Big: " + b"x" * (16 << 20) + b"\r\n\r\n",
        431,
    ),
    "100,000 headers": (
        b"GET /health HTTP/1.1\r\nHost: test\r\n"
        + b"".join(b"X-%d: y\r\n" % n for n in range(100_000))
        + b"\r\n",
        431,
    ),
    "a 100 KB URL": (b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: test\r\n\r\n", 414),
    "no Host": (b"GET /health HTTP/1.1\r\n\r\n", 400),
    "two Hosts": (b"GET /health HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n", 400),
    "a body declared past the limit": (
        b"POST /items HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        + b"Content-Length: %d\r\n\r\n" % (LIMIT + 1),
        413,
    ),
    "a chunked body past the limit": (
        b"POST /items HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + chunked(LIMIT // 2, LIMIT // 2 + 1),
        413,
    ),
}


@pytest.mark.parametrize("case", OVERSIZED)
def test_an_oversized_or_malformed_request_gets_a_json_4xx_from_the_proxy(
    proxy: int, served: Served, case: str
) -> None:
    request, expected = OVERSIZED[case]
    before = settled(served.log)
    status, headers, body = answer_to(proxy, request)

    assert status == expected
    assert headers["content-type"] == "application/json"
    assert headers["x-content-type-options"] == "nosniff"
    assert "detail" in json.loads(body)
    assert "server" not in headers
    assert settled(served.log) == before  # the service never saw it


def more_open_files(wanted: int) -> None:
    """Let this process (and the nginx it starts) hold ``wanted`` sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"this process may open {hard} files; the test needs {wanted}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))


class Cut:
    """When the proxy closed a connection (seconds after it was opened), and what it sent."""

    def __init__(self) -> None:
        self.after: list[float] = []
        self.answers: list[bytes] = []

    async def wait(self, reader: asyncio.StreamReader, since: float) -> None:
        try:
            answer = await reader.read()
        except ConnectionResetError:
            answer = b""
        self.after.append(time.monotonic() - since)
        self.answers.append(answer)


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter, float]


async def connect(port: int) -> Connection:
    """A connection to ``port``, and when it was made."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    return reader, writer, time.monotonic()


async def silent(connection: Connection, cut: Cut) -> None:
    reader, _, opened = connection
    await cut.wait(reader, opened)


async def slow_head(connection: Connection, cut: Cut, n: int) -> None:
    """A request head sent a byte a second; it names itself in its request id."""
    reader, writer, opened = connection
    head = f"GET /health HTTP/1.1\r\nX-Request-ID: slow-head-{n}\r\nHost: test\r\n".encode()
    head += b"X-Padding: " + b"y" * 100

    async def trickle() -> None:
        for byte in head:
            writer.write(bytes([byte]))
            await asyncio.sleep(1)

    trickling = asyncio.create_task(trickle())
    await cut.wait(reader, opened)
    trickling.cancel()


async def stalled_body(connection: Connection, cut: Cut, n: int) -> None:
    """A request that declares 1,000 body bytes and sends 10."""
    reader, writer, opened = connection
    writer.write(
        b"POST /items HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        + f"X-Request-ID: stalled-body-{n}\r\nContent-Length: 1000\r\n\r\n".encode()
        + b'{"name": "'
    )
    await cut.wait(reader, opened)


async def idle_after_a_request(connection: Connection, cut: Cut) -> None:
    reader, writer, _ = connection
    writer.write(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
    await reader.readuntil(b'{"status":"ok"}')
    await cut.wait(reader, time.monotonic())


async def test_slow_silent_and_idle_clients_are_cut_off_while_others_are_served(
    proxy: int, served: Served
) -> None:
    """2,000 sockets that send nothing, 200 request heads sent a byte a second, 50
    bodies that stop half-way and an idle keep-alive connection are all closed by
    the proxy within seconds of its timeouts; none of them reaches the service, and
    a client meanwhile is served at once, every time."""
    more_open_files(2 * (SILENT + SLOW_HEADS + STALLED_BODIES) + 200)
    cuts = {name: Cut() for name in ("silent", "slow head", "stalled body", "idle")}
    connections = [await connect(proxy) for _ in range(SILENT + SLOW_HEADS + STALLED_BODIES + 1)]
    heads = connections[SILENT : SILENT + SLOW_HEADS]
    bodies = connections[SILENT + SLOW_HEADS : -1]
    clients = [silent(connection, cuts["silent"]) for connection in connections[:SILENT]]
    clients += [slow_head(c, cuts["slow head"], n) for n, c in enumerate(heads)]
    clients += [stalled_body(c, cuts["stalled body"], n) for n, c in enumerate(bodies)]
    clients.append(idle_after_a_request(connections[-1], cuts["idle"]))
    hostile = asyncio.gather(*clients)
    waits = []
    try:
        await asyncio.sleep(1)  # every head and body begun
        async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{proxy}") as client:
            for _ in range(20):
                started = time.monotonic()
                answer = await client.get("/health", headers={"Connection": "close"})
                waits.append(time.monotonic() - started)
                assert answer.status_code == 200
                await asyncio.sleep(0.1)
        await asyncio.wait_for(hostile, timeout=seconds("keepalive_timeout") + 10)
    finally:
        hostile.cancel()
        for _, writer, _ in connections:
            writer.close()

    head_timeout = seconds("client_header_timeout")
    # Served at once, not after the hostile clients' timeouts (on a busy machine, at once
    # is not always under a second).
    assert max(waits) < head_timeout / 2
    expected = {
        "silent": (SILENT, head_timeout),
        "slow head": (SLOW_HEADS, head_timeout),
        "stalled body": (STALLED_BODIES, seconds("client_body_timeout")),
        "idle": (1, seconds("keepalive_timeout")),
    }
    for name, (count, timeout) in expected.items():
        cut = cuts[name]
        assert len(cut.after) == count, name
        # Measured from when this process saw its connection open, which on a busy
        # machine is up to a second or so after nginx accepted it and started the clock.
        assert min(cut.after) > timeout - 2, (name, cut.after)
        assert max(cut.after) < timeout + 5, (name, cut.after)
        assert set(cut.answers) == {b""}, name  # cut off, not answered
    log = served.log.read_text()
    assert "slow-head" not in log
    assert "stalled-body" not in log


def test_too_many_requests_in_progress_from_one_address_get_a_429(proxy: int) -> None:
    """Past ``limit_conn`` requests in progress from one address (here: bodies that
    stopped half-way), the next is answered 429 with Retry-After; once they are
    gone, it is served again."""
    limit = int(directive("limit_conn per_client"))
    request = (
        b"POST /items HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n{"
    )
    health = b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n"
    held = [socket.create_connection(("127.0.0.1", proxy), timeout=10) for _ in range(limit)]
    try:
        for connection in held:
            connection.sendall(request)
        time.sleep(0.5)  # nginx has read every head
        refused = answer_to(proxy, health)
    finally:
        for connection in held:
            connection.close()
    deadline = time.monotonic() + 5
    while (served := answer_to(proxy, health))[0] != 200 and time.monotonic() < deadline:
        time.sleep(0.1)

    status, headers, body = refused
    assert status == 429
    assert headers["retry-after"] == "1"
    assert "detail" in json.loads(body)
    assert served[0] == 200


def test_the_service_unreachable_is_a_json_503_with_retry_after() -> None:
    with nginx_in_front_of(free_port()) as port:
        answer = httpx2.get(f"http://127.0.0.1:{port}/items")

    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "5"
    assert "detail" in answer.json()


def test_the_scheme_a_load_balancer_saw_reaches_the_service(proxy: int) -> None:
    """nginx passes on the X-Forwarded-Proto of a load balancer that ended TLS in front
    of it, else its own scheme: the service builds its links (and marks its cookies
    Secure) with the scheme the client used."""
    base = f"http://127.0.0.1:{proxy}"
    behind_tls = httpx2.get(f"{base}/items/", headers={"X-Forwarded-Proto": "https"})
    plain = httpx2.get(f"{base}/items/")

    assert behind_tls.status_code == plain.status_code == 307  # to /items, without the slash
    assert behind_tls.headers["location"].startswith("https://")
    assert plain.headers["location"].startswith("http://")
{% if cookiecutter.metrics %}


def test_metrics_are_scraped_from_the_service_not_through_the_proxy(
    proxy: int, served: Served
) -> None:
    assert httpx2.get(f"http://127.0.0.1:{proxy}/metrics").status_code == 404
    assert httpx2.get(f"http://127.0.0.1:{served.port}/metrics").status_code == 200
{% endif %}
