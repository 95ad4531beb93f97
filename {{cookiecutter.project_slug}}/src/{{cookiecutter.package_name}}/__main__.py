"""Serve the service: ``python -m {{ cookiecutter.package_name }} [--host H] [--port P] [--workers N] [--reload]``.

uvicorn serves the application, logging as ``logs.py`` says, in
``WEB_CONCURRENCY`` worker processes (default 1; the container image sets 2).
The workers share the port; each has its own connection pool. SIGTERM (what
``docker stop`` sends) or Ctrl-C lets the requests in flight finish; then
every worker closes its connections and the server exits.

The workers' metrics meet in files in ``PROMETHEUS_MULTIPROC_DIR``, which must
start empty: this command empties the folder it names, or makes a temporary one.
"""

import argparse
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from .logs import logging_config
from .settings import get_settings


def positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return number


@contextmanager
def metrics_folder() -> Iterator[None]:
    """An empty ``PROMETHEUS_MULTIPROC_DIR`` while the server runs."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        folder = Path(given)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):  # the last run's numbers
            stale.unlink()
        yield
        return
    prefix = "{{ cookiecutter.package_name }}-metrics-"
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    try:
        yield
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="python -m {{ cookiecutter.package_name }}",
        description="Serve the service with uvicorn.",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=8000,
        help="port to listen on (default: %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=positive,
        default=settings.web_concurrency,
        help="worker processes (default: WEB_CONCURRENCY, else 1)",
    )
    parser.add_argument(
        "--reload",
        action="store_true",
        help="restart when the code changes (development)",
    )
    args = parser.parse_args(argv)
    # The workers read their settings from the environment: tell them how many they are.
    os.environ["WEB_CONCURRENCY"] = str(args.workers)
    with metrics_folder():
        uvicorn.run(
            "{{ cookiecutter.package_name }}.main:app",
            host=args.host,
            port=args.port,
            workers=args.workers,
            reload=args.reload,
            log_config=logging_config(settings),
            access_log=False,  # observability.py writes one that names the route
        )


if __name__ == "__main__":
    main()
