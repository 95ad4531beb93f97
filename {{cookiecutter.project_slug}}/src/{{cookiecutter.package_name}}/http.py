"""What every resource's HTTP interface shares, and what every request passes first:
``Id`` (route ``{item_id:id}``), ``not_found()``, ETags and ``If-Match``, the answers
each operation may get (``declare_answers()``), the pure ASGI middleware's base, the
security headers and the ``Host`` check (RFC 9112; ``ALLOWED_HOSTS``).
"""

import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import FastAPI, Header, HTTPException, Path, status
from fastapi.responses import JSONResponse
from pydantic.json_schema import SkipJsonSchema
from starlette.convertors import IntegerConvertor, register_url_convertor
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .db.types import MAX_ID

HTTP_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
WRITE_METHODS = frozenset({"DELETE", "PATCH", "POST", "PUT"})
UNMATCHED = "<unmatched>"

# What an operation may be answered besides its own, by what it takes (declare_answers).
ANSWERS = {
    "400": "The body is not JSON, or the Host header is missing, repeated or not served",
    "404": "Nothing has this id",
    "409": "The request conflicts with stored data",
    "412": "It changed since the ETag in If-Match",
    "413": "The body is larger than MAX_REQUEST_BODY",
    "503": "The database or the worker cannot serve the request now; retry after Retry-After",
}

Id = Annotated[int, Path(ge=1, le=MAX_ID)]


class IdConvertor(IntegerConvertor):
    """``{name:id}``: up to 4,300 digits, as many as Python converts (``{name:int}`` takes more)."""

    regex = "[0-9]{1,4300}"


register_url_convertor("id", IdConvertor())

# The ETags of the row as the client last saw it, or *; one naming no ETag is refused as stale.
IfMatch = Annotated[str | SkipJsonSchema[None], Header(examples=['"1"'])]


def amend_operations(app: FastAPI, amend: Callable[[str, str, dict[str, Any]], None]) -> None:
    """Have ``amend(path, METHOD, operation)`` edit each operation of ``app``'s OpenAPI
    document, once, as it is built."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                amend(path, method.upper(), operation)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def declare_answers(app: FastAPI) -> None:
    """Declare each operation's ``ANSWERS`` in ``app``'s OpenAPI document (keeping its own)."""

    def declare(path: str, method: str, operation: dict[str, Any]) -> None:
        parameters = {p["name"].lower() for p in operation.get("parameters", [])}
        answers = {
            "400": True,
            "404": "{" in path,
            "409": method in WRITE_METHODS,
            "412": "if-match" in parameters,
            "413": "requestBody" in operation,
            "503": True,
        }
        for answer in (answer for answer, given in answers.items() if given):
            operation["responses"].setdefault(answer, {"description": ANSWERS[answer]})

    amend_operations(app, declare)


def not_found(what: str) -> HTTPException:
    """The 404 for ``what``, such as ``Item 7``: ``raise not_found(f"Item {item_id}")``."""
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{what} not found.")


def etag(version: int) -> str:
    """The ``ETag`` of a row at ``version`` (its version counter)."""
    return f'"{version}"'


def require_etag(if_match: str | None, current: str) -> None:
    """412 for a change made against another version than ``current`` (no If-Match: any)."""
    tags = {tag.strip() for tag in (if_match or "*").split(",")}
    if "*" not in tags and current not in tags:
        raise HTTPException(
            status.HTTP_412_PRECONDITION_FAILED,
            f"It changed since: its ETag is {current}.",
            headers={"ETag": current},
        )


class ASGIMiddleware:
    """A pure ASGI middleware: ``handle`` sees each HTTP request; the rest passes through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.handle(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


# Every answer: not sniffed as another type, not cached (unless a route says so), no referrer.
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"no-referrer"),
)


class SecurityHeadersMiddleware(ASGIMiddleware):
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", ())
                present = {name for name, _ in headers}  # ASGI's names are lowercase
                missing = [header for header in SECURITY_HEADERS if header[0] not in present]
                message = {**message, "headers": [*headers, *missing]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


# A host name or an IPv4 address, or an IPv6 address in brackets; then an optional port.
_HOST = re.compile(r"(?:[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?")


class HostMiddleware(ASGIMiddleware):
    """400 for a ``Host`` missing (HTTP/1.1), repeated, malformed or not ``allowed``."""

    def __init__(self, app: ASGIApp, allowed: list[str]) -> None:
        super().__init__(app)
        self.any = "*" in allowed
        self.exact = {host for host in allowed if not host.startswith("*.")}
        self.suffixes = tuple(host[1:] for host in allowed if host.startswith("*."))

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        hosts = [value for name, value in scope["headers"] if name == b"host"]
        problem = self.problem(hosts, scope.get("http_version", "1.1"))
        if problem is None:
            await self.app(scope, receive, send)
            return
        response = JSONResponse({"detail": problem}, status_code=status.HTTP_400_BAD_REQUEST)
        await response(scope, receive, send)

    def problem(self, hosts: list[bytes], http_version: str) -> str | None:
        if not hosts:
            return None if http_version == "1.0" else "The request has no Host header."
        if len(hosts) > 1:
            return "The request has more than one Host header."
        host = hosts[0].decode("latin-1").lower()
        if not _HOST.fullmatch(host):
            return "The Host header names no host."
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if self.any or name in self.exact or name.endswith(self.suffixes):
            return None
        return "This service does not serve that host."


def route_of(scope: Scope) -> str:
    """The path template of the route that answered (``/items/{item_id}``), or ``<unmatched>``;
    a route of Starlette's (``/docs``) leaves only its endpoint."""
    route = scope.get("route")
    if route is None and "endpoint" in scope:
        routes = scope["app"].routes
        route = next((r for r in routes if getattr(r, "endpoint", None) is scope["endpoint"]), None)
    return getattr(route, "path_format", UNMATCHED)
