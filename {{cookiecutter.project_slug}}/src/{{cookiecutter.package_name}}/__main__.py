"""Serve the service: ``python -m {{ cookiecutter.package_name }} [--host H] [--port P] [--workers N] [--reload]``.

uvicorn serves the application, logging as ``logs.py`` says, in
``WEB_CONCURRENCY`` worker processes (the image sets 2), each with its own
connection pool. SIGTERM or Ctrl-C lets the requests in flight finish, then
every worker closes its connections. Each worker serves at most
``WEB_MAX_CONCURRENCY`` connections and requests at once (503 past it), and
closes a keep-alive connection idle for ``WEB_KEEP_ALIVE_TIMEOUT`` seconds.
{% if cookiecutter.reverse_proxy %}
What a slow or hostile client can do before a request reaches the service
(headers sent a byte a second, huge headers, thousands of idle sockets) is
bounded by nginx in front of it (``deploy/nginx.conf``).
{% endif %}
{% if cookiecutter.metrics %}

Several workers write their metrics to one folder, which this command
prepares for them (``metrics_folder.py``).
{% endif %}
"""

import argparse
import gc
import os
import sys
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from .logs import logging_config
{% if cookiecutter.metrics %}
from .metrics_folder import shared_folder
{% endif %}
from .settings import Settings, get_settings, problems, unknown_variables

PROG = "python -m {{ cookiecutter.package_name }}"
# uvicorn builds the application in each worker: worker_app().
APP = "{{ cookiecutter.package_name }}.__main__:worker_app"


def positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return number


def worker_app() -> FastAPI:
    """The application of one worker process (what uvicorn's ``--factory`` calls)."""
    # Imported in the worker: nothing of the application is built in the server process.
    from .main import create_app

    app = create_app()
    # What exists now lives as long as the process: kept out of the collector's way,
    # it makes no full collection a pause of tens of milliseconds for requests in flight.
    gc.freeze()
    return app


def load_settings() -> Settings:
    """The settings, checked before any worker starts: exit with one line per bad one
    (status 1), and warn of variables that look like misspelt settings."""
    for line in unknown_variables(os.environ):
        print(f"{PROG}: warning: {line}", file=sys.stderr)
    try:
        return get_settings()
    except ValidationError as error:
        sys.exit("\n".join(f"{PROG}: cannot start: {line}" for line in problems(error)))


def main(argv: list[str] | None = None) -> None:
    settings = load_settings()
    parser = argparse.ArgumentParser(prog=PROG, description="Serve the service with uvicorn.")
    parser.add_argument("--host", default="127.0.0.1", help="address (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
    parser.add_argument(
        "--workers",
        type=positive,
        default=settings.web_concurrency,
        help="worker processes (default: WEB_CONCURRENCY, else 1)",
    )
    parser.add_argument("--reload", action="store_true", help="restart when the code changes")
    args = parser.parse_args(argv)
    # The workers read their settings from the environment: tell them how many they are.
    os.environ["WEB_CONCURRENCY"] = str(args.workers)
{% if cookiecutter.metrics %}
    with shared_folder(args.workers):
        serve(args, settings)
{% else %}
    serve(args, settings)
{% endif %}


def serve(args: argparse.Namespace, settings: Settings) -> None:
    """uvicorn, in this process or in several workers."""
    if args.workers > 1 and not args.reload:
        serve_workers(args, settings)
    else:
        uvicorn.run(APP, **server_options(args, settings))


def server_options(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    return {
        "factory": True,
        "host": args.host,
        "port": args.port,
        "workers": args.workers,
        "reload": args.reload,
        "log_config": logging_config(settings),
        "access_log": False,  # observability.py writes one that names the route
        "server_header": False,  # a client learns nothing of what serves it
        "limit_concurrency": settings.web_max_concurrency,
        "timeout_keep_alive": settings.web_keep_alive_timeout,
    }


def serve_workers(args: argparse.Namespace, settings: Settings) -> None:
    """What ``uvicorn.run`` does for several workers, but a worker that fails to
    start makes the server exit with uvicorn's status 3, not 0."""
    config = uvicorn.Config(APP, **server_options(args, settings))
    supervisor = Multiprocess(config, sockets=[config.bind_socket()])
    supervisor.run()
    if any(process.exitcode == STARTUP_FAILURE for process in supervisor.processes):
        sys.exit(STARTUP_FAILURE)


if __name__ == "__main__":
    main()
