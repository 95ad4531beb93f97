"""Read-your-writes across requests, when reads go to standbys (``db/replicas.py``).

A response to a request that wrote carries a consistency token — the
primary's WAL position once the write was committed — twice: as the
``Consistency-Token`` header, for API clients to send back on their next
requests, and as a cookie of the same meaning, which browsers and other
cookie-keeping clients send back by themselves. A request that carries one
(the header, the cookie, or both: the later position counts) reads from a
standby only once the standby has replayed that far, and from the primary
otherwise. A missing or malformed token is no error: the request reads what
any standby in rotation has.

The cookie lasts ``DB_REPLICA_MAX_LAG`` seconds and a check: by then every
standby still in rotation has replayed past it.
"""

import math
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .db.replicas import format_position, parse_position, reading_after
from .http import WRITE_METHODS, ASGIMiddleware, amend_operations

POSITION_HEADER = "Consistency-Token"
POSITION_COOKIE = "consistency_token"
_HEADER = POSITION_HEADER.lower().encode()
# A token is a WAL position ("16/B374D848"): any longer header or cookie is no token.
_LONGEST = 17


class ConsistencyMiddleware(ASGIMiddleware):
    """Reads each request's token, and gives one to each request that wrote (see above)."""

    def __init__(self, app: ASGIApp, *, max_lag: float, check_interval: float) -> None:
        super().__init__(app)
        self.max_age = math.ceil(max_lag + check_interval)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        with reading_after(token_of(scope)) as positions:

            async def send_with_token(message: Message) -> None:
                if message["type"] == "http.response.start" and positions.written is not None:
                    token = format_position(positions.written).encode()
                    secure = b"; Secure" if scope.get("scheme") == "https" else b""
                    cookie = (
                        f"{POSITION_COOKIE}=".encode() + token
                        + f"; Max-Age={self.max_age}; Path=/; HttpOnly; SameSite=Lax".encode()
                        + secure
                    )  # fmt: skip
                    headers = [(_HEADER, token), (b"set-cookie", cookie)]
                    message = {**message, "headers": [*message.get("headers", []), *headers]}
                await send(message)

            await self.app(scope, receive, send_with_token)


def document(app: FastAPI) -> None:
    """Declare the token in ``app``'s OpenAPI document: taken by every operation, given by
    the success of every write."""
    token = {"type": "string", "examples": ["0/16B3748"]}
    taken = {
        "name": POSITION_HEADER,
        "in": "header",
        "required": False,
        "description": "A write's token: read what it wrote, and nothing older (no token: ignored)",
        "schema": token,
    }
    given = {"description": "Where the write left the primary: send it back", "schema": token}

    def declare(_path: str, method: str, operation: dict[str, Any]) -> None:
        operation.setdefault("parameters", []).append(taken)
        if method in WRITE_METHODS:
            for status, answer in operation["responses"].items():
                if status.startswith("2"):
                    answer.setdefault("headers", {})[POSITION_HEADER] = given

    amend_operations(app, declare)


def token_of(scope: Scope) -> int | None:
    """The latest position a request's ``Consistency-Token`` header and cookie name."""
    given: list[str] = []
    for name, value in scope["headers"]:
        if name == _HEADER:
            given.append(value.decode("latin-1"))
        elif name == b"cookie":
            for pair in value.decode("latin-1").split(";"):
                key, _, token = pair.strip().partition("=")
                if key == POSITION_COOKIE:
                    given.append(token)
    positions = [parse_position(token) for token in given if len(token) <= _LONGEST]
    return max((p for p in positions if p is not None), default=None)
