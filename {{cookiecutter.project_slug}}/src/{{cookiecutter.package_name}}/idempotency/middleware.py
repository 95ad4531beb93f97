{% set is_pg = cookiecutter.database == "postgresql" %}
"""The ``Idempotency-Key`` header of a write (the IETF httpapi draft's semantics).

A ``POST``, ``PUT``, ``PATCH`` or ``DELETE`` that carries one:

- runs once. Its unit of work begins here and claims the key
  (``repository.claim()``); the request's units of work join it
  (``database.py``), and its answer (status, headers, body) is stored in the
  same transaction, which commits when the answer is complete. Only then
  does the client get it, so the write and its answer are stored together,
  or neither is. This middleware, not the session strategy, commits a keyed
  write.
- sent again with the same key and the same request (method, path, query,
  content type, ``If-Match``, body), gets the stored answer again, with
  ``Idempotent-Replayed: true``, and nothing runs.
{% if is_pg %}
- sent again while the first one still runs: 409 with ``Retry-After``, at
  once, holding no connection while the first one finishes.
{% else %}
- sent again while the first one still runs: it waits for the first one, as
  every SQLite writer waits for the write lock, then gets its answer.
{% endif %}
- sent with a key an earlier, different request used: 422.
- answered with an error (4xx or 5xx): nothing is stored, as nothing was
  written, and a retry runs again. Even so every keyed request is a write
  transaction, and an answer streamed to a keyed request holds it open to its
  last byte.

A key is 1 to 255 visible ASCII characters, quotes and backslashes excepted
(a UUID is the usual choice), sent plain or as a structured-field string (in
double quotes), and kept for ``IDEMPOTENCY_KEY_TTL`` seconds. Keys are the
service's, not a client's: once clients authenticate, make the caller part of
the key.
"""

import hashlib
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, HTTPException, status
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import database_error_response, error
from ..http import WRITE_METHODS, ASGIMiddleware, amend_operations
from .database import KeyedDatabase, KeyedUnit, joined_by_the_request
from .models import KEY_MAX_LENGTH
{% if is_pg %}
from .repository import KeyInFlightError, StoredAnswer, claim, store_answer
{% else %}
from .repository import StoredAnswer, claim, store_answer
{% endif %}

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"

_HEADER = HEADER.lower().encode()
# Visible ASCII but the double quote and the backslash, which structured-field strings escape.
_KEY_PATTERN = r"^[!#-\[\]-~]+$"
_KEY = re.compile(_KEY_PATTERN)
{% if is_pg %}
_IN_FLIGHT = f"A request with this {HEADER} is still running; retry once it has answered."
{% endif %}
_MALFORMED = (
    f"The {HEADER} header must be sent once, as 1 to {KEY_MAX_LENGTH} visible ASCII"
    " characters, quotes and backslashes excepted."
)

PARAMETER = {
    "name": HEADER,
    "in": "header",
    "required": False,
    "description": (
        "Makes a retry of this request safe: the first answer is stored with the write"
        " and answered again to a retry with the same key and request; the same key"
        " with a different request is refused with 422{{ ", and a retry while the first"
        " one runs with 409" if is_pg }}."
    ),
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": KEY_MAX_LENGTH,
        "pattern": _KEY_PATTERN,
    },
}


# The 422 in the shape the document declares for every 422: a list of validation errors.
_REUSED = [
    {
        "type": "idempotency_key_reused",
        "loc": ["header", HEADER],
        "msg": f"This {HEADER} was sent before with a different request.",
    }
]


class _AnswerReplacedError(Exception):
    """Stops the application's response after an error response went out instead."""


class IdempotencyMiddleware(ASGIMiddleware):
    """Runs a write that carries an ``Idempotency-Key`` once (see above)."""

    def __init__(self, app: ASGIApp, ttl: float) -> None:
        super().__init__(app)
        self.ttl = ttl

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        keys = [value for name, value in scope["headers"] if name == _HEADER]
        if scope["method"] not in WRITE_METHODS or not keys:
            await self.app(scope, receive, send)
            return
        key = _key_of(keys)
        if key is None:
            await error(status.HTTP_400_BAD_REQUEST, _MALFORMED)(scope, receive, send)
            return
        try:
            body = await _read_body(receive)
        except HTTPException as refused:  # BodyLimitMiddleware's 413
            await error(refused.status_code, str(refused.detail))(scope, receive, send)
            return
        if body is not None:  # None: the client went away
            request = _KeyedRequest(self.app, scope["app"].state.database, key, self.ttl)
            await request.run(scope, _replaying(body, receive), send, _fingerprint(scope, body))


class _KeyedRequest:
    """One write with a key: its unit of work, begun and ended here."""

    def __init__(self, app: ASGIApp, database: KeyedDatabase, key: str, ttl: float) -> None:
        self.app = app
        self.database = database
        self.key = key
        self.ttl = ttl

    async def run(self, scope: Scope, receive: Receive, send: Send, fingerprint: str) -> None:
        name = f"{scope['method']} {scope['path']} ({HEADER})"
        try:
            session = await self.database.begin(writes=True, name=name)
        except SQLAlchemyError as failed:
            await database_error_response(failed)(scope, receive, send)
            return
        unit = KeyedUnit(session)
        try:
            await self.claim_and_run(unit, session, scope, receive, send, fingerprint)
        except _AnswerReplacedError:
            pass
        finally:
            # Ended however the request ends, a cancelled one included (no-op if it was).
            await self.database.end_keyed(unit, commit=False)

    async def claim_and_run(
        self,
        unit: KeyedUnit,
        session: Any,
        scope: Scope,
        receive: Receive,
        send: Send,
        fingerprint: str,
    ) -> None:
        try:
            earlier = await self.database.run(session, claim, self.key, fingerprint, self.ttl)
{% if is_pg %}
        except KeyInFlightError:
            await error(status.HTTP_409_CONFLICT, _IN_FLIGHT, {"Retry-After": "1"})(
                scope, receive, send
            )
            return
{% endif %}
        except SQLAlchemyError as failed:
            await database_error_response(failed)(scope, receive, send)
            return
        if earlier is not None:
            # Ended like a write, so that the replay tells what the first answer told.
            await self.database.end_keyed(unit, commit=True)
            await _replay(earlier, fingerprint)(scope, receive, send)
            return
        with joined_by_the_request(unit):
            await self.app(scope, receive, self.storing(unit, session, scope, receive, send))

    def storing(
        self, unit: KeyedUnit, session: Any, scope: Scope, receive: Receive, send: Send
    ) -> Send:
        """A ``send`` that keeps the response until it is complete, stores it and
        commits (an error response: rolls back), then sends it."""
        start: Message = {}
        chunks: list[bytes] = []

        async def store_then_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            succeeded = start["status"] < status.HTTP_400_BAD_REQUEST
            instead = None
            if succeeded and unit.rolled_back:
                # A unit that joined rolled back: nothing is stored, and no 2xx may say otherwise.
                logger.error("%s answered %s but rolled back", scope["path"], start["status"])
                instead = error(status.HTTP_500_INTERNAL_SERVER_ERROR, "Internal server error.")
            else:
                try:
                    if succeeded:
                        headers = [
                            [n.decode("latin-1"), v.decode("latin-1")] for n, v in start["headers"]
                        ]
                        await self.database.run(
                            session, store_answer, self.key, start["status"], headers, body
                        )
                    await self.database.end_keyed(unit, commit=succeeded)
                except SQLAlchemyError as failed:
                    instead = database_error_response(failed)
            if instead is not None:
                await self.database.end_keyed(unit, commit=False)
                await instead(scope, receive, send)
                raise _AnswerReplacedError
            await send(start)
            await send({"type": "http.response.body", "body": body})

        return store_then_send


def document(app: FastAPI) -> None:
    """Declare the header, and its 400{{ " and 409" if is_pg }}, on every write of ``app``'s OpenAPI document."""

    def declare(_path: str, method: str, operation: dict[str, Any]) -> None:
        if method not in WRITE_METHODS:
            return
        operation.setdefault("parameters", []).append(PARAMETER)
        answer = operation["responses"].setdefault("400", {"description": "Bad request"})
        answer["description"] += f"; or a malformed {HEADER}"
{% if is_pg %}
        answer = operation["responses"].setdefault("409", {"description": "Conflict"})
        answer["description"] += f"; or its {HEADER}'s first request still runs"
{% endif %}

    amend_operations(app, declare)


def _key_of(values: list[bytes]) -> str | None:
    if len(values) != 1:
        return None
    key = values[0].decode("latin-1")
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]  # a structured-field string
    return key if len(key) <= KEY_MAX_LENGTH and _KEY.fullmatch(key) else None


def _fingerprint(scope: Scope, body: bytes) -> str:
    headers = dict(scope["headers"])
    parts = [
        scope["method"].encode(),
        scope["path"].encode(),
        scope["query_string"],
        headers.get(b"content-type", b""),
        headers.get(b"if-match", b""),
    ]
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big") + part)
    digest.update(body)
    return digest.hexdigest()


async def _read_body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the body read already, then waits for the disconnect."""
    given = False

    async def receive_again() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive_again


def _replay(
    earlier: StoredAnswer, fingerprint: str
) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    if earlier.fingerprint != fingerprint or earlier.status is None:
        return error(status.HTTP_422_UNPROCESSABLE_CONTENT, _REUSED)
    headers = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in earlier.headers or []]
    headers.append((REPLAYED_HEADER.lower().encode(), b"true"))

    async def replay(_scope: Scope, _receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": earlier.status, "headers": headers})
        await send({"type": "http.response.body", "body": earlier.body or b""})

    return replay
