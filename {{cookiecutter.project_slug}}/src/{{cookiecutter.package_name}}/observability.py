"""What the service tells its operators about each request: its id and the access log.

- **Request id** (asgi-correlation-id): the request's ``X-Request-ID`` when it
  looks like one (``is_request_id()``: nothing that could forge a log line),
  else a new one; answered in ``X-Request-ID`` and carried by every log line
  of the request (``logs.py``).
- **Access log**: one line per request on ``{{ cookiecutter.package_name }}.access``: method, route
  (``/items/{item_id}``; ``<unmatched>`` for no route, ``OTHER`` for an unknown
  method), status and milliseconds (and, in JSON, the path).
"""

import logging
import re
import time

from starlette.types import Message, Receive, Scope, Send

from .http import HTTP_METHODS, ASGIMiddleware, route_of

REQUEST_ID_HEADER = "X-Request-ID"
# A UUID, nginx's 32 hex digits, AWS's Root=1-...;Parent=...;Sampled=1, Google's
# TRACE/SPAN;o=1, a W3C traceparent: letters, digits and these marks, no space.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:;=/+@-]{1,200}")
# The status of a request whose client went away before it was answered (nginx's).
NO_RESPONSE = 499

access_log = logging.getLogger("{{ cookiecutter.package_name }}.access")


def is_request_id(value: str) -> bool:
    """Whether an upstream ``X-Request-ID`` is kept (see above)."""
    return _REQUEST_ID.fullmatch(value) is not None


class AccessMiddleware(ASGIMiddleware):
    """Times each request to the last byte of its answer and ``report()``s it."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = NO_RESPONSE
        answered: float | None = None

        async def timing_send(message: Message) -> None:
            nonlocal status, answered
            await send(message)
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                answered = time.perf_counter()

        try:
            await self.app(scope, receive, timing_send)
        finally:
            # Background tasks run after the last byte; they do not count.
            seconds = (answered or time.perf_counter()) - started
            method = scope["method"] if scope["method"] in HTTP_METHODS else "OTHER"
            self.report(scope, method, route_of(scope), status, seconds)

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
