"""Log lines: ``LOG_FORMAT=text`` (readable) or ``json`` (one object per line), from
``LOG_LEVEL`` up, the service's, uvicorn's and SQLAlchemy's through one handler, each
with the id of the request it was logged in. uvicorn applies it in every worker.
A traceback keeps its last frames: one of a deep recursion would be thousands of lines.
"""

import logging
import traceback
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from .settings import Settings

TRACEBACK_FRAMES = 30


def _last_frames(self: logging.Formatter, ei: Any) -> str:
    return "".join(traceback.format_exception(ei[1], limit=-TRACEBACK_FRAMES)).rstrip()


class TextFormatter(logging.Formatter):
    formatException = _last_frames  # noqa: N815 (logging's name)


class JsonLinesFormatter(JsonFormatter):
    formatException = _last_frames  # noqa: N815 (logging's name)


_FORMATTERS: dict[str, dict[str, Any]] = {
    "text": {
        "()": f"{__name__}.TextFormatter",
        "fmt": "%(asctime)s %(levelname)-7s [%(request_id)s] %(name)s: %(message)s",
    },
    # python-json-logger: these standard fields, and every one a call passes in ``extra``.
    "json": {
        "()": f"{__name__}.JsonLinesFormatter",
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
