"""What the service tells its operators about each request: its ``X-Request-ID`` (the
client's when it looks like one, else a new one), carried by every line it logs, and
one access line on ``{{ cookiecutter.package_name }}.access``: method, route (``<unmatched>``, or ``OTHER``
for an unknown method), status, milliseconds and the database statements it sent (and,
in JSON, the path).
"""

import logging
import os
import re
import time
from contextvars import ContextVar

from starlette.types import Message, Receive, Scope, Send

from .db.unit import STATEMENTS
from .http import HTTP_METHODS, ASGIMiddleware, route_of

REQUEST_ID_HEADER = "X-Request-ID"
_ID_HEADER = REQUEST_ID_HEADER.lower().encode()
# UUIDs, nginx's, AWS's, Google's and W3C's trace ids: nothing that could forge a log line.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:;=/+@-]{1,200}")
# The status of a request whose client went away before it was answered (nginx's).
NO_RESPONSE = 499

access_log = logging.getLogger("{{ cookiecutter.package_name }}.access")
# The id of the request being handled ("-" outside any).
request_id: ContextVar[str] = ContextVar("request_id", default="-")


class RequestIdFilter(logging.Filter):
    """Gives each log record the ``request_id`` of the request it was logged in."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class AccessMiddleware(ASGIMiddleware):
    """Gives each request its id, times it to its answer's last byte, ``report()``s it."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        given = next((value for name, value in scope["headers"] if name == _ID_HEADER), b"")
        this_id = given.decode("latin-1")
        if _REQUEST_ID.fullmatch(this_id) is None:
            this_id = os.urandom(16).hex()
        token = request_id.set(this_id)
        counted = [0]
        counting = STATEMENTS.set(counted)
        status = NO_RESPONSE
        answered: float | None = None
        statements: int | None = None

        async def timing_send(message: Message) -> None:
            nonlocal status, answered, statements
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), (_ID_HEADER, this_id.encode())]
                message = {**message, "headers": headers}
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                answered, statements = time.perf_counter(), counted[0]

        try:
            await self.app(scope, receive, timing_send)
        finally:
            # Background tasks run after the last byte; neither their time nor their
            # statements count.
            seconds = (answered or time.perf_counter()) - started
            method = scope["method"] if scope["method"] in HTTP_METHODS else "OTHER"
            sent = counted[0] if statements is None else statements
            self.report(scope, method, route_of(scope), status, seconds, sent)
            STATEMENTS.reset(counting)
            request_id.reset(token)

    def report(
        self, scope: Scope, method: str, route: str, status: int, seconds: float, statements: int
    ) -> None:
        """One access log line."""
        extra: dict[str, object] = {"method": method, "route": route, "status": status}
        extra.update(path=scope["path"], duration_ms=round(seconds * 1000, 3))
        extra["statements"] = statements
        line = "%s %s %s %.1f ms sql=%d"
        access_log.info(line, method, route, status, seconds * 1000, statements, extra=extra)
