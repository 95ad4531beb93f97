"""Keyset pagination: a list is paged from where its last page ended, never by an offset.

A page links to the next (``next``, and an RFC 8288 ``Link`` header) until ``next`` is
null; its ``after`` is the page's last id, so every page costs the same however deep.
A walk sees every row committed before it began, once, in id order (on PostgreSQL, which
hands out an id at INSERT and shows the row at COMMIT, one created meanwhile may lie
behind a page already read). The total is counted only on request, up to ``TOTAL_BOUND``.

A route takes ``page: PageQuery``, asks its repository for ``page.fetch`` rows after
``page.after`` (a count up to ``page.count_up_to`` when ``page.counting``) and returns
``page.answer(rows, response, total=...)``.
"""

from collections.abc import Sequence
from typing import Annotated, {{ "Generic, Protocol, TypeVar" if cookiecutter.python_version == "3.11" else "Protocol" }}

from fastapi import Depends, Query, Request, Response
from pydantic import BaseModel

from .db.types import MAX_ID

# Rows counted at most for a total; past it the total says "at least this many".
TOTAL_BOUND = 10_000

Limit = Annotated[int, Query(ge=1, le=100, description="Rows per page")]
After = Annotated[int, Query(ge=0, le=MAX_ID, description="The last id of the page before")]
WithTotal = Annotated[bool, Query(description=f"Count the rows too (up to {TOTAL_BOUND:,})")]


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
    """One page of a list, the link to the next (null on the last), the total if asked for."""

    items: list[T]
    next: str | None
    total: Total | None = None


class Row(Protocol):
    @property
    def id(self) -> int: ...


class PageRequest:
    """The page a request asks for: ``limit`` rows after the id ``after`` (0: the first page)."""

    def __init__(self, request: Request, limit: int, after: int, counting: bool) -> None:
        self._request = request
        self.limit = limit
        self.after = after
        self.counting = counting
        # One row more than the page shows: whether there is a next page.
        self.fetch = limit + 1
        # One row more than the bound: whether the count stopped at it.
        self.count_up_to = TOTAL_BOUND + 1

    def answer(
        self, rows: Sequence[Row], response: Response, *, total: int | None = None
    ) -> dict[str, object]:
        """The page of ``rows`` (``fetch`` at most), its next link, and a count's total."""
        shown = rows[: self.limit]
        following = None
        if len(rows) > self.limit:
            url = self._request.url.include_query_params(after=shown[-1].id)
            following = f"{url.path}?{url.query}"
            response.headers["Link"] = f'<{following}>; rel="next"'
        page: dict[str, object] = {"items": shown, "next": following}
        if total is not None:
            page["total"] = Total(count=min(total, TOTAL_BOUND), exact=total <= TOTAL_BOUND)
        return page


async def _page_request(
    request: Request, limit: Limit = 50, after: After = 0, total: WithTotal = False
) -> PageRequest:
    return PageRequest(request, limit, after, total)


PageQuery = Annotated[PageRequest, Depends(_page_request)]
