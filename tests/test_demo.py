"""``python3 tasks.py demo`` as a newcomer runs it, and as ``timeout`` or a process
manager ends it: with SIGTERM, which must stop the server it started."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .matrix import TEMPLATE_DIR

PORT = 8000  # the demo's, as the README says


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def test_the_demo_serves_and_sigterm_stops_its_server(tmp_path: Path) -> None:
    if listening(PORT):
        reason = f"something already listens on :{PORT}, where the demo serves"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(f"SKIPPING the demo: {reason}")
    log = tmp_path / "demo.log"
    with log.open("wb") as output:
        demo = subprocess.Popen(
            [sys.executable, "tasks.py", "demo", str(tmp_path / "demo")],
            cwd=TEMPLATE_DIR,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 300
        while not healthy(PORT):
            assert demo.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        demo.send_signal(signal.SIGTERM)
        demo.wait(timeout=30)
        assert not listening(PORT), log.read_text()
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
