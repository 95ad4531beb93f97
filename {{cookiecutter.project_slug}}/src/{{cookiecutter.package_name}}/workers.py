"""Several worker processes in one server: ``python -m {{ cookiecutter.package_name }} --workers N``,
``WEB_CONCURRENCY`` by default (the image sets 2), each with a connection pool of its own.

uvicorn's own runner exits 0 when a worker cannot start; ``serve()`` exits with uvicorn's
status 3, so that a process manager sees the failure.
"""

import argparse
import os
import sys
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess


def positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return number


def add_argument(parser: argparse.ArgumentParser, default: int) -> None:
    help = "worker processes (default: WEB_CONCURRENCY, else 1)"
    parser.add_argument("--workers", type=positive, default=default, help=help)


def serve(app: str, options: dict[str, Any], workers: int) -> None:
    """uvicorn serving ``app`` in ``workers`` processes (one while reloading)."""
    # The workers read their settings from the environment: tell them how many they are.
    os.environ["WEB_CONCURRENCY"] = str(workers)
    if workers == 1 or options["reload"]:
        uvicorn.run(app, **options)
        return
    config = uvicorn.Config(app, workers=workers, **options)
    supervisor = Multiprocess(config, sockets=[config.bind_socket()])
    supervisor.run()
    if any(process.exitcode == STARTUP_FAILURE for process in supervisor.processes):
        sys.exit(STARTUP_FAILURE)
