"""What every resource's HTTP interface shares, so that a new one copies no plumbing.

- ``Id``: an id in a path, one the database can hold (a larger one names no row).
- ``Offset``, ``Limit`` and ``Page``: one page of a list, with the total.
- ``not_found()``: the 404 of a row that does not exist.
- ``IfMatch``, ``etag()`` and ``require_etag()``: optimistic concurrency. A client
  sends back the ``ETag`` it read in ``If-Match``; a change made against a version
  that is no longer stored is refused with a 412.
- ``BODY``, ``CONFLICT``, ``NOT_FOUND``, ``CHANGED`` and ``UNAVAILABLE``: the
  answers a route declares in the OpenAPI document, besides its 2xx and 422.
- ``ASGIMiddleware``: the base of the service's pure ASGI middleware, and
  ``route_of()``, the route that answered a request (for logs and metrics).
"""

from typing import Annotated, Any{{ ", Generic, TypeVar" if cookiecutter.python_version == "3.11" }}

from fastapi import Header, HTTPException, Path, Query, status
from pydantic import BaseModel
from pydantic.json_schema import SkipJsonSchema
from starlette.types import ASGIApp, Receive, Scope, Send

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
# What OFFSET takes: a 64-bit integer.
Offset = Annotated[int, Query(ge=0, le=2**63 - 1)]
Limit = Annotated[int, Query(ge=1, le=100)]
# The ETags of the row as the client last saw it, or *. A value that names no ETag
# at all is refused like a stale one.
IfMatch = Annotated[str | SkipJsonSchema[None], Header(examples=['"1"'])]
{% if cookiecutter.python_version == "3.11" %}

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
{% else %}


class Page[T](BaseModel):
{% endif %}
    """One page of a list: ``limit`` rows from ``offset`` on, and how many there are."""

    items: list[T]
    total: int


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
