"""Log lines: readable text in development, one JSON object per line in production.

``LOG_FORMAT`` chooses (``text`` or ``json``), ``LOG_LEVEL`` the threshold. The
service's own loggers, uvicorn's and SQLAlchemy's all write through the same
handler, and every line logged while a request is handled carries that
request's id (``observability.py`` sets it). ``python -m {{ cookiecutter.package_name }}`` hands this
configuration to uvicorn, which applies it in every worker process.
"""

from typing import Any

from .settings import Settings

_FORMATTERS: dict[str, dict[str, Any]] = {
    "text": {
        "format": "%(asctime)s %(levelname)-7s [%(request_id)s] %(name)s: %(message)s",
    },
    # python-json-logger: the record's standard fields named below, plus every
    # field a call passes in ``extra`` (the access log's method, route, status...).
    "json": {
        "()": "pythonjsonlogger.json.JsonFormatter",
        "fmt": ["levelname", "name", "message", "request_id"],
        "timestamp": "time",  # ISO 8601, UTC
        "rename_fields": {"levelname": "level", "name": "logger"},
    },
}


def logging_config(settings: Settings) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` configuration for ``settings``."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            # Each line's request_id: "-" for a line logged outside any request.
            "request_id": {"()": f"{__package__}.observability.RequestIdFilter"},
        },
        "formatters": {"default": _FORMATTERS[settings.log_format]},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "default",
                "filters": ["request_id"],
            },
        },
        # uvicorn's loggers have no handler of their own: they write through this one.
        "root": {"handlers": ["default"], "level": settings.log_level},
    }
