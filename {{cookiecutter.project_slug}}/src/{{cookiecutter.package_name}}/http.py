"""What every resource's HTTP interface shares, so that a new one copies no plumbing.

- ``Id``: an id in a path, one the database can hold (a larger one names no row);
  route it as ``{item_id:id}``: digits only, at most 4,300 of them (more are a
  404, before anything converts them).
- ``not_found()``: the 404 of a row that does not exist.
- ``IfMatch``, ``etag()`` and ``require_etag()``: optimistic concurrency. A client
  sends back the ``ETag`` it read in ``If-Match``; a change made against a version
  that is no longer stored is refused with a 412.
- ``BODY``, ``CONFLICT``, ``NOT_FOUND``, ``CHANGED`` and ``UNAVAILABLE``: the
  answers a route declares in the OpenAPI document, besides its 2xx and 422.
- ``ASGIMiddleware``: the base of the service's pure ASGI middleware, and
  ``route_of()``, the route that answered a request (for the access log).
- ``SecurityHeadersMiddleware``: what every answer of a JSON API says about
  itself, unless its route said otherwise (``SECURITY_HEADERS``).
- ``HostMiddleware``: a 400 for a request without one valid ``Host`` header
  (RFC 9112) or for a host the service does not serve (``ALLOWED_HOSTS``).
"""

import re
from typing import Annotated, Any

from fastapi import Header, HTTPException, Path, status
from fastapi.responses import JSONResponse
from pydantic.json_schema import SkipJsonSchema
from starlette.convertors import IntegerConvertor, register_url_convertor
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .db.types import MAX_ID

Responses = dict[int | str, dict[str, Any]]

HTTP_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
UNMATCHED = "<unmatched>"

BODY: Responses = {
    400: {"description": "The body is not JSON"},
    413: {"description": "The body is larger than MAX_REQUEST_BODY"},
}
CONFLICT: Responses = {409: {"description": "The request conflicts with stored data"}}
NOT_FOUND: Responses = {404: {"description": "Nothing has this id"}}
CHANGED: Responses = {412: {"description": "It changed since the ETag in If-Match"}}
UNAVAILABLE: Responses = {
    503: {"description": "The database cannot serve the request now; retry after Retry-After"}
}

Id = Annotated[int, Path(ge=1, le=MAX_ID)]


class IdConvertor(IntegerConvertor):
    """``{name:id}`` in a path: digits, as many as Python converts (4,300), so a
    larger id than the column holds is a 422 (``Id``) and a longer one a 404;
    Starlette's ``int`` routes any number of digits to a conversion that fails."""

    regex = "[0-9]{1,4300}"


register_url_convertor("id", IdConvertor())

# The ETags of the row as the client last saw it, or *. A value that names no ETag
# at all is refused like a stale one.
IfMatch = Annotated[str | SkipJsonSchema[None], Header(examples=['"1"'])]


def not_found(what: str) -> HTTPException:
    """The 404 for ``what``, such as ``Item 7``: ``raise not_found(f"Item {item_id}")``."""
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{what} not found.")


def etag(version: int) -> str:
    """The ``ETag`` of a row at ``version`` (its version counter)."""
    return f'"{version}"'


def require_etag(if_match: str | None, current: str) -> None:
    """Refuse (412) a change made against another version than the ``current`` ETag.

    Without If-Match the change applies to whatever is stored: the last writer wins.
    """
    tags = {tag.strip() for tag in (if_match or "*").split(",")}
    if "*" not in tags and current not in tags:
        raise HTTPException(
            status.HTTP_412_PRECONDITION_FAILED,
            f"It changed since: its ETag is {current}.",
            headers={"ETag": current},
        )


class ASGIMiddleware:
    """A pure ASGI middleware for HTTP requests: ``handle`` sees each one; the
    lifespan and websockets pass through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.handle(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


# Every answer: not to be sniffed as another type, not to be stored by caches (a route
# that may be cached sets its own Cache-Control), no referrer sent from it.
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
    (b"referrer-policy", b"no-referrer"),
)


class SecurityHeadersMiddleware(ASGIMiddleware):
    """Adds ``SECURITY_HEADERS`` to every response that does not set them itself."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [header for header in SECURITY_HEADERS if header[0] not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


# A host name or an IPv4 address, or an IPv6 address in brackets; then an optional port.
_HOST = re.compile(r"(?:[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?")


class HostMiddleware(ASGIMiddleware):
    """Answers 400 to a request whose ``Host`` is missing (HTTP/1.1), repeated,
    malformed, or not among ``allowed`` (``*``: any; ``*.example.com``: below it)."""

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
    """The path template of the route that answered (``/items/{item_id}``), or ``<unmatched>``.

    FastAPI's own routes name themselves in the scope; the routes Starlette
    matches for FastAPI (``/docs``, ``/openapi.json``) leave only their endpoint.
    """
    route = scope.get("route")
    if route is None and "endpoint" in scope:
        routes = scope["app"].routes
        route = next((r for r in routes if getattr(r, "endpoint", None) is scope["endpoint"]), None)
    return getattr(route, "path_format", UNMATCHED)
