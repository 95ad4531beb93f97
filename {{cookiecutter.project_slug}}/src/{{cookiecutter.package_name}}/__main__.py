{% set workers = cookiecutter.workers %}
"""Serve the service: ``python -m {{ cookiecutter.package_name }} [--host H] [--port P]{{ " [--workers N]" if workers }} [--reload]``.

{% if workers %}
uvicorn serves the application in ``WEB_CONCURRENCY`` worker processes (``workers.py``),
each with its own pool; SIGTERM or Ctrl-C lets the requests in flight finish. A worker
serves at most ``WEB_MAX_CONCURRENCY`` connections and requests at once (503 past it)
and closes a keep-alive connection idle ``WEB_KEEP_ALIVE_TIMEOUT`` seconds.
{% else %}
uvicorn serves the application in one process with one connection pool (more cores:
more processes, such as containers); SIGTERM or Ctrl-C lets the requests in flight
finish. It serves at most ``WEB_MAX_CONCURRENCY`` connections and requests at once
(503 past it) and closes a keep-alive connection idle ``WEB_KEEP_ALIVE_TIMEOUT`` seconds.
{% endif %}
{% if cookiecutter.reverse_proxy %}
What a slow or hostile client can do before a request reaches the service
(headers sent a byte a second, huge headers, thousands of idle sockets) is
bounded by nginx in front of it (``deploy/nginx.conf``).
{% endif %}
{% if cookiecutter.metrics and workers %}

Several workers write their metrics to one folder, which this command
prepares for them (``metrics_folder.py``).
{% endif %}
"""

import argparse
import gc
import logging.config
import os
import sys
from typing import Any

{% if not workers %}
import uvicorn
{% endif %}
from fastapi import FastAPI
from pydantic import ValidationError

{% if workers %}
from . import workers
{% endif %}
from .logs import logging_config
{% if cookiecutter.metrics and workers %}
from .metrics_folder import shared_folder
{% endif %}
from .settings import Settings, get_settings, problems, unknown_variables

PROG = "python -m {{ cookiecutter.package_name }}"
{% if cookiecutter.tracing %}
# Each log line also carries the trace and span current where it was logged.
LOG_IDS = {f"{__package__}.tracing.TraceIdFilter": ("trace_id", "span_id")}
{% endif %}
APP = "{{ cookiecutter.package_name }}.__main__:worker_app"


def worker_app() -> FastAPI:
    """The application, built by uvicorn (``--factory``) in the process that serves it."""
    from .main import create_app  # here: nothing of it is built in a supervising process

    app = create_app()
    gc.freeze()  # what lives as long as the process, out of the collector's way
    return app


def load_settings(prog: str = PROG) -> Settings:
    """The settings, checked before uvicorn starts (exit 1, one line per bad one);
    variables that look like misspelt settings are warned of, as log lines once
    the settings say how to write them."""
    typos = unknown_variables(os.environ)
    try:
        settings = get_settings()
    except ValidationError as error:
        lines = [f"warning: {line}" for line in typos]
        lines += [f"cannot start: {line}" for line in problems(error)]
        sys.exit("\n".join(f"{prog}: {line}" for line in lines))
    logging.config.dictConfig(logging_config(settings{{ ", LOG_IDS" if cookiecutter.tracing }}))
    for line in typos:
        logging.getLogger(__package__).warning(line)
    return settings


def main(argv: list[str] | None = None) -> None:
    settings = load_settings()
    parser = argparse.ArgumentParser(prog=PROG, description="Serve the service with uvicorn.")
    parser.add_argument("--host", default="127.0.0.1", help="address (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: %(default)s)")
{% if workers %}
    workers.add_argument(parser, default=settings.web_concurrency)
{% endif %}
    parser.add_argument("--reload", action="store_true", help="restart when the code changes")
    args = parser.parse_args(argv)
    options: dict[str, Any] = {
        "factory": True,
        "host": args.host,
        "port": args.port,
        "reload": args.reload,
{% if not workers %}
        "workers": 1,  # whatever WEB_CONCURRENCY says: uvicorn would read it
{% endif %}
        "log_config": logging_config(settings{{ ", LOG_IDS" if cookiecutter.tracing }}),
        "access_log": False,  # observability.py writes one that names the route
        "server_header": False,  # a client learns nothing of what serves it
        "limit_concurrency": settings.web_max_concurrency,
        "timeout_keep_alive": settings.web_keep_alive_timeout,
    }
{% if cookiecutter.metrics and workers %}
    with shared_folder(args.workers):
        workers.serve(APP, options, args.workers)
{% elif workers %}
    workers.serve(APP, options, args.workers)
{% else %}
    uvicorn.run(APP, **options)
{% endif %}


if __name__ == "__main__":
    main()
