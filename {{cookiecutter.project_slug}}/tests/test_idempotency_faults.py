"""Writes with an ``Idempotency-Key`` through real connection faults (PostgreSQL).

A connection is cut by a small TCP proxy between the service and PostgreSQL
(``support.CuttingProxy``), right after the service sent a given statement:

- cut mid-write: a 503, nothing stored; the retry with the same key runs
  again, and the row is stored once;
- cut right after ``COMMIT``, so that the answer is lost while the write may
  have been stored: the retry with the same key gets the first answer, and
  the row is stored once.
"""

import logging

import pytest
from httpx2 import AsyncClient

from {{ cookiecutter.package_name }}.idempotency.middleware import (
    HEADER,
    REPLAYED_HEADER,
)

from .support import CuttingProxy, items_listed

PRIVATE = "private description"


async def test_a_keyed_write_cut_midway_is_a_503_and_its_retry_is_stored_once(
    proxied: AsyncClient, proxy: CuttingProxy, caplog: pytest.LogCaptureFixture
) -> None:
    body = {"name": "Widget", "description": PRIVATE}
    # Not the unit's first statement: the key was claimed before it.
    proxy.cut_after(b"INSERT INTO items")
    with caplog.at_level(logging.WARNING):
        cut = await proxied.post("/items", json=body, headers={HEADER: "k"})
    retried = await proxied.post("/items", json=body, headers={HEADER: "k"})

    assert proxy.cuts == 1
    assert cut.status_code == 503
    assert retried.status_code == 201
    assert REPLAYED_HEADER not in retried.headers  # nothing was stored: it ran again
    assert await items_listed(proxied) == 1
    assert PRIVATE not in caplog.text


async def test_a_commit_whose_answer_was_lost_is_answered_to_its_retry(
    proxied: AsyncClient, proxy: CuttingProxy
) -> None:
    proxy.cut_after(b"COMMIT")
    cut = await proxied.post("/items", json={"name": "Widget"}, headers={HEADER: "k"})
    retried = await proxied.post("/items", json={"name": "Widget"}, headers={HEADER: "k"})

    assert proxy.cuts == 1
    assert cut.status_code == 503
    assert cut.headers["retry-after"] == "5"
    assert retried.status_code == 201
    assert retried.headers[REPLAYED_HEADER] == "true"  # the first one was stored
    assert await items_listed(proxied) == 1
