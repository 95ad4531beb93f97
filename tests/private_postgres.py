"""A PostgreSQL cluster of a test's own: its data directory, its port, its server process.

For the tests that restart or crash a server under load, which must not touch the
machine's shared one. The server programs are PostgreSQL's own (``pg_config
--bindir``); they refuse to run as root, so as root they run as the ``postgres``
user (``runuser``), in a directory that user owns.
"""

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg


def server_programs() -> Path:
    """Where ``initdb``, ``pg_ctl`` and ``postgres`` are."""
    found = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True)
    return Path(found.stdout.strip())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrivateCluster:
    """``initdb`` on construction; ``start``, ``restart``, ``crash``; ``remove`` at the end.
    ``standby()``: a hot standby of it, a cluster of its own."""

    def __init__(self, *, initdb: bool = True) -> None:
        self.bin = server_programs()
        self.root = Path(tempfile.mkdtemp(prefix="private-postgres-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        if initdb:
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-N")

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin / program), *args]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{program} failed:\n{result.stdout}{result.stderr}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def restart(self) -> None:
        """A fast shutdown (every session told to go, then stopped), then a start."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        self.start()

    def crash(self) -> None:
        """An immediate shutdown (no checkpoint: recovery at the next start), then a start."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        self.start()

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def standby(self) -> "PrivateCluster":
        """A hot standby of this (running) cluster, streaming its WAL, started: copied with
        ``pg_basebackup -R`` at once (a fast checkpoint)."""
        standby = PrivateCluster(initdb=False)
        address = ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]
        copy = ["-D", str(standby.data), "-R", "-X", "stream", "-c", "fast"]
        standby._run("pg_basebackup", *address, *copy)
        standby.start()
        return standby

    def url(self, database: str = "postgres", scheme: str = "postgresql") -> str:
        return f"{scheme}://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> None:
        with psycopg.connect(self.url(), autocommit=True) as server:
            server.execute(f'CREATE DATABASE "{name}"')

    def remove(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
