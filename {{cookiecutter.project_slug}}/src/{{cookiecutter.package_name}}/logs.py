"""Log lines: ``LOG_FORMAT=text`` (readable) or ``json`` (one object per line), from
``LOG_LEVEL`` up, the service's, uvicorn's and SQLAlchemy's through one handler, each
with the id of the request it was logged in, and the ids ``__main__.py`` adds. uvicorn
applies it in every worker. A traceback keeps its last frames: one of a deep recursion
would be thousands of lines.
"""

import logging
import traceback
from collections.abc import Mapping
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


# The ids every line carries, by the filter that gives a record them: the request's
# ("-" for a line logged outside any request), and those a caller adds.
_REQUEST_ID = {f"{__package__}.observability.RequestIdFilter": ("request_id",)}


def logging_config(
    settings: Settings, more_ids: Mapping[str, tuple[str, ...]] | None = None
) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` configuration for ``settings``; each line also
    carries ``more_ids``, given by their filters (named by their dotted paths)."""
    ids = {**_REQUEST_ID, **(more_ids or {})}
    fields = [field for names in ids.values() for field in names]
    formatters: dict[str, dict[str, Any]] = {
        "text": {
            "()": f"{__name__}.TextFormatter",
            "fmt": "%(asctime)s %(levelname)-7s ["
            + " ".join(f"%({field})s" for field in fields)
            + "] %(name)s: %(message)s",
        },
        # python-json-logger: these standard fields, and every one a call passes in ``extra``.
        "json": {
            "()": f"{__name__}.JsonLinesFormatter",
            "fmt": ["levelname", "name", "message", *fields],
            "timestamp": "time",  # ISO 8601, UTC
            "rename_fields": {"levelname": "level", "name": "logger"},
        },
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {path: {"()": path} for path in ids},
        "formatters": {"default": formatters[settings.log_format]},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "default",
                "filters": list(ids),
            },
        },
        # uvicorn's loggers have no handler of their own: they write through this one.
        "root": {"handlers": ["default"], "level": settings.log_level},
    }
