"""What the service tells its operators about each request: its id and the access log.

- **Request id**: the request's ``X-Request-ID`` when it looks like one
  (``is_request_id()``: nothing that could forge a log line), else a new one;
  answered in ``X-Request-ID`` and carried by every log line of the request
  (``RequestIdFilter``, which ``logs.py`` installs).
- **Access log**: one line per request on ``{{ cookiecutter.package_name }}.access``: method, route
  (``/items/{item_id}``; ``<unmatched>`` for no route, ``OTHER`` for an unknown
  method), status and milliseconds (and, in JSON, the path).
"""

import logging
import os
import re
import time
from contextvars import ContextVar

from starlette.types import Message, Receive, Scope, Send

from .http import HTTP_METHODS, ASGIMiddleware, route_of

REQUEST_ID_HEADER = "X-Request-ID"
_ID_HEADER = REQUEST_ID_HEADER.lower().encode()
# A UUID, nginx's 32 hex digits, AWS's Root=1-...;Parent=...;Sampled=1, Google's
# TRACE/SPAN;o=1, a W3C traceparent: letters, digits and these marks, no space.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:;=/+@-]{1,200}")
# The status of a request whose client went away before it was answered (nginx's).
NO_RESPONSE = 499

access_log = logging.getLogger("{{ cookiecutter.package_name }}.access")
# The id of the request being handled ("-" outside any).
request_id: ContextVar[str] = ContextVar("request_id", default="-")


def is_request_id(value: str) -> bool:
    """Whether an upstream ``X-Request-ID`` is kept (see above)."""
    return _REQUEST_ID.fullmatch(value) is not None


class RequestIdFilter(logging.Filter):
    """Gives each log record the ``request_id`` of the request it was logged in."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class AccessMiddleware(ASGIMiddleware):
    """Gives each request its id, times it to the last byte of its answer and
    ``report()``s it."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        given = next((value for name, value in scope["headers"] if name == _ID_HEADER), b"")
        this_id = given.decode("latin-1")
        if not is_request_id(this_id):
            this_id = os.urandom(16).hex()
        token = request_id.set(this_id)
        status = NO_RESPONSE
        answered: float | None = None

        async def timing_send(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), (_ID_HEADER, this_id.encode())]
                message = {**message, "headers": headers}
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                answered = time.perf_counter()

        try:
            await self.app(scope, receive, timing_send)
        finally:
            # Background tasks run after the last byte; they do not count.
            seconds = (answered or time.perf_counter()) - started
            method = scope["method"] if scope["method"] in HTTP_METHODS else "OTHER"
            self.report(scope, method, route_of(scope), status, seconds)
            request_id.reset(token)

    def report(self, scope: Scope, method: str, route: str, status: int, seconds: float) -> None:
        """One access log line."""
        access_log.info(
            "%s %s %s %.1f ms",
            method,
            route,
            status,
            seconds * 1000,
            extra={
                "method": method,
                "route": route,
                "path": scope["path"],
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
            },
        )
