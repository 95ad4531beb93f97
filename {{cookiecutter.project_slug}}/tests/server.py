"""The service served in a process of its own, for tests that need a real server."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_serving(base_url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert server.poll() is None, "the server exited while starting"
        try:
            httpx2.get(f"{base_url}/health", timeout=1)
        except httpx2.TransportError:
            time.sleep(0.1)
        else:
            return
    raise AssertionError("the server did not start within 30 s")


def start_server(
    database_url: str, log: Path, *, workers: int = 1, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """The service as its container runs it (``python -m {{ cookiecutter.package_name }}``) on a free
    port, its output in ``log`` (a file: a pipe nobody reads would stall the server once full)."""
    port = free_port()
    with log.open("wb") as output:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "{{ cookiecutter.package_name }}",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            cwd=log.parent,  # not the project's: its .env is the developer's, not the test's
            env={
                **os.environ,
                "PROMETHEUS_MULTIPROC_DIR": str(log.with_name(f"{log.stem}-metrics")),
                **(env or {}),
                "DATABASE_URL": database_url,
            },
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    wait_until_serving(f"http://127.0.0.1:{port}", server)
    return server, port
