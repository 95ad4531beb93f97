"""Keyset pagination: a list is paged from where its last page ended, never by an offset.

A page's answer links to the next one: ``next`` in the body and an RFC 8288
``Link: <...>; rel="next"`` header, until ``next`` is null. The link's
``after`` is a cursor: the id of the page's last row, signed together with
the list's path (HMAC-SHA256, with ``PAGE_CURSOR_KEY``). Clients treat it as
opaque; one that this list did not give — edited, forged, cut short, or from
another list — is refused with a 400. A cursor stays valid as long as the key,
even once its row is deleted.

Every page costs the same, however deep: the database finds the first row
past the cursor in the primary key's index (``WHERE id > :after ORDER BY id
LIMIT :limit``) where an ``OFFSET`` reads and throws away every row before it.
Paging through a table that changes skips and repeats nothing: ids only grow,
so a row inserted meanwhile comes after every cursor already given (it shows up
on a later page), and a deleted one is simply not there.

The total is counted only when asked for (``total=true``), and only up to
``TOTAL_BOUND`` rows: ``{"count": 10000, "exact": false}`` means more.

A route declares ``page: PageQuery``, asks its repository for ``page.fetch``
rows after ``page.after`` (and for a count up to ``page.count_up_to`` when
``page.counting``), and returns ``page.answer(rows, response, total=...)``.
"""

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from typing import Annotated, {{ "Generic, Protocol, TypeVar" if cookiecutter.python_version == "3.11" else "Protocol" }}

from fastapi import Depends, HTTPException, Query, Request, Response, status
from pydantic import BaseModel
from pydantic.json_schema import SkipJsonSchema

from .db.types import MAX_ID
from .http import Responses
from .settings import Settings

# Rows counted at most for a total; past it the total says "at least this many".
TOTAL_BOUND = 10_000
# Base64url, a dot, base64url: what the service's cursors look like.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{1,30}\.[A-Za-z0-9_-]{22}$"

Limit = Annotated[int, Query(ge=1, le=100, description="Rows per page")]
After = Annotated[
    str | SkipJsonSchema[None],
    Query(
        max_length=60,
        pattern=CURSOR_PATTERN,
        description="The cursor of the page before, from its next link",
    ),
]
WithTotal = Annotated[bool, Query(description=f"Count the rows too (up to {TOTAL_BOUND:,})")]

BAD_CURSOR: Responses = {400: {"description": "after is not a cursor this list gave"}}


class Total(BaseModel):
    """How many rows the list has: ``count``, or more than that when not ``exact``."""

    count: int
    exact: bool
{% if cookiecutter.python_version == "3.11" %}


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
{% else %}


class Page[T](BaseModel):
{% endif %}
    """One page of a list, the link to the next one (null on the last), and the
    total when it was asked for."""

    items: list[T]
    next: str | None
    total: Total | None = None


class Row(Protocol):
    @property
    def id(self) -> int: ...


def cursor_key(settings: Settings) -> bytes:
    """The key that signs cursors: from ``PAGE_CURSOR_KEY``, else from ``DATABASE_URL``,
    which every worker and replica of a deployment shares."""
    secret = settings.page_cursor_key
    seed = settings.database_url if secret is None else secret.get_secret_value()
    return hashlib.sha256(b"page cursors\0" + seed.encode()).digest()


class PageRequest:
    """The page a request asks for: ``limit`` rows after the id ``after`` (0: the first page)."""

    def __init__(self, request: Request, limit: int, cursor: str | None, counting: bool) -> None:
        self._request = request
        self._key: bytes = request.app.state.cursor_key
        self.limit = limit
        self.after = 0 if cursor is None else self._position(cursor)
        self.counting = counting
        # One row more than the page shows: whether there is a next page.
        self.fetch = limit + 1
        # One row more than the bound: whether the count stopped at it.
        self.count_up_to = TOTAL_BOUND + 1

    def answer(
        self, rows: Sequence[Row], response: Response, *, total: int | None = None
    ) -> dict[str, object]:
        """The page of ``rows`` (``fetch`` of them at most), its next link, and the
        total (``count_up_to`` rows at most) when asked for."""
        shown = rows[: self.limit]
        following = None
        if len(rows) > self.limit:
            url = self._request.url.include_query_params(after=self.cursor(shown[-1].id))
            following = f"{url.path}?{url.query}"
            response.headers["Link"] = f'<{following}>; rel="next"'
        page: dict[str, object] = {"items": shown, "next": following}
        if total is not None:
            page["total"] = Total(count=min(total, TOTAL_BOUND), exact=total <= TOTAL_BOUND)
        return page

    def cursor(self, position: int) -> str:
        """The cursor of the page after the row with id ``position``, in this list."""
        return cursor(self._key, self._request.url.path, position)

    def _position(self, given: str) -> int:
        return position(self._key, self._request.url.path, given)


def cursor(key: bytes, path: str, position: int) -> str:
    """The cursor, signed with ``key``, of the page after id ``position`` in the list at ``path``."""
    payload = str(position).encode()
    return f"{_encode(payload)}.{_encode(_tag(key, path, payload))}"


def position(key: bytes, path: str, given: str) -> int:
    """The id after which the page of cursor ``given`` starts; a 400 unless the list at
    ``path`` gave the cursor."""
    encoded_payload, _, encoded_tag = given.partition(".")
    try:
        payload, tag = _decode(encoded_payload), _decode(encoded_tag)
    except (binascii.Error, ValueError):
        payload, tag = b"", b""
    if not (tag and hmac.compare_digest(tag, _tag(key, path, payload))):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            "after is not a cursor this list gave: follow a page's next link.",
        )
    # Only a leaked key could sign anything else.
    if not (payload.isdigit() and 0 < int(payload) <= MAX_ID):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "after names no position.")
    return int(payload)


def _tag(key: bytes, path: str, payload: bytes) -> bytes:
    return hmac.new(key, path.encode() + b"\0" + payload, hashlib.sha256).digest()[:16]


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def _page_request(
    request: Request, limit: Limit = 50, after: After = None, total: WithTotal = False
) -> PageRequest:
    return PageRequest(request, limit, after, total)


PageQuery = Annotated[PageRequest, Depends(_page_request)]
