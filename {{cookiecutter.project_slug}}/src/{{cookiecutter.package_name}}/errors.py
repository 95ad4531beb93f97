"""How failures become HTTP responses, in one place: a JSON ``{"detail": ...}`` on a
connection that stays open. ``ConflictError``: 409. A SQLAlchemy error, by what
``engine.failure_of()`` says it means: 409 (a unique violation), 412 (changed since it
was read), 503 with ``Retry-After`` for what can pass later (logged in one line: the
failure, the error's class and code, no SQL values), else 500. 405 names every method of
the path in ``Allow``; 413 comes before the body is read; a 422 repeats the request's
input, cut short (``NaN`` and ``1e99999`` as text). Any other exception: 500, logged
with its traceback.
"""

import itertools
import json
import logging
import math
from typing import Any, cast

from fastapi import FastAPI, HTTPException, Request, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError, ResponseValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .db.engine import error_code, failure_of
from .db.errors import ConflictError, Failure
from .http import HTTP_METHODS, ASGIMiddleware

logger = logging.getLogger(__name__)

# The 503s: what the client reads, and the seconds it should wait before it retries.
_TRY_AGAIN = {
    Failure.UNAVAILABLE: ("The database is unavailable, try again later.", 5),
    Failure.CONTENDED: ("The request collided with another; try it again.", 1),
    Failure.TIMED_OUT: ("The database took too long to answer; try again later.", 5),
}


def error(status_code: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    """The service's answer to a failure: ``{"detail": ...}``."""
    return JSONResponse({"detail": detail}, status_code=status_code, headers=headers)


def database_error_response(failed: Exception) -> JSONResponse:
    """The response for a failed database operation (see above)."""
    if isinstance(failed, StaleDataError):
        stale = "It changed since it was read; read it again."
        return error(status.HTTP_412_PRECONDITION_FAILED, stale)
    failure = failure_of(failed)
    if failure is Failure.DUPLICATE:
        return error(status.HTTP_409_CONFLICT, "The request conflicts with stored data.")
    if failure in _TRY_AGAIN:
        cause = getattr(failed, "orig", None) or failed
        code = error_code(failed) or "no error code"
        logger.warning("Database %s: %s (%s)", failure.value, type(cause).__name__, code)
        detail, seconds = _TRY_AGAIN[failure]
        return error(status.HTTP_503_SERVICE_UNAVAILABLE, detail, {"Retry-After": str(seconds)})
    logger.error("Database error", exc_info=failed)
    return error(status.HTTP_500_INTERNAL_SERVER_ERROR, "Internal database error.")


class AsciiJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped: it can carry any text a client sent."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, allow_nan=False, separators=(",", ":")).encode()


async def _database_error(_request: Request, failed: Exception) -> JSONResponse:
    return database_error_response(failed)


async def _conflict(_request: Request, conflict: Exception) -> JSONResponse:
    return error(status.HTTP_409_CONFLICT, str(conflict))


async def _http_error(request: Request, failed: Exception) -> Response:
    http_error = cast(StarletteHTTPException, failed)
    if http_error.status_code == status.HTTP_405_METHOD_NOT_ALLOWED:
        # Starlette names the methods of one route; a path can have several.
        methods = {
            method
            for method in HTTP_METHODS
            for route in request.app.routes
            if route.matches({**request.scope, "method": method})[0] == Match.FULL
        }
        http_error.headers = {**(http_error.headers or {}), "Allow": ", ".join(sorted(methods))}
    return await http_exception_handler(request, http_error)


async def _invalid_request(_request: Request, invalid: Exception) -> JSONResponse:
    errors = cast(RequestValidationError, invalid).errors()
    echoed = [{**e, "input": _echo(e["input"])} if "input" in e else e for e in errors]
    return AsciiJSONResponse(
        {"detail": jsonable_encoder(echoed)}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT
    )


# A 422 repeats a refused input this deep, this many items, this many characters: all of
# a body nested 900 deep would be a 500 (Python's recursion limit), a large one larger.
_ECHO_DEPTH, _ECHO_ITEMS, _ECHO_CHARACTERS = 4, 10, 100


def _echo(value: Any, depth: int = 0) -> Any:
    """``value`` as a 422 repeats it: cut short ("..."), NaN and the infinities as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value).replace("inf", "Infinity").replace("nan", "NaN")
    if isinstance(value, str) and len(value) > _ECHO_CHARACTERS:
        return value[:_ECHO_CHARACTERS] + "..."
    if isinstance(value, dict | list) and depth == _ECHO_DEPTH:
        return "..."
    if isinstance(value, dict):
        shown = itertools.islice(value.items(), _ECHO_ITEMS)
        echoed = {_echo(key): _echo(item, depth + 1) for key, item in shown}
        return echoed | ({"...": "..."} if len(value) > _ECHO_ITEMS else {})
    if isinstance(value, list):
        cut = ["..."] if len(value) > _ECHO_ITEMS else []
        return [_echo(item, depth + 1) for item in value[:_ECHO_ITEMS]] + cut
    return value


class BodyLimitMiddleware(ASGIMiddleware):
    """Answers 413 to a request whose body is larger than ``max_bytes``, before parsing it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        detail = f"The request body is larger than {self.max_bytes} bytes."
        declared = next((v for name, v in scope["headers"] if name == b"content-length"), b"0")
        # More digits than the limit has is larger (and int() refuses thousands of digits).
        too_long = len(declared) > len(str(self.max_bytes))
        if declared.isdigit() and (too_long or int(declared) > self.max_bytes):
            await error(status.HTTP_413_CONTENT_TOO_LARGE, detail)(scope, receive, send)
            return

        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                # FastAPI lets an HTTPException from reading the body through to its handler.
                raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail)
            return message

        await self.app(scope, counting_receive, send)


_NOT_LOADED = (
    "%s %s answered what its unit of work had not loaded (%s): load it in the repository's"
    " query (selectinload) and say how the relationship loads (lazy=...); see the README"
)


def _not_loaded(failed: Exception) -> str:
    """The attributes an answer could not read from a model (a load too late: lazy="raise",
    MissingGreenlet, a closed session), as ``loc: message``; empty for any other error."""
    if not isinstance(failed, ValidationError | ResponseValidationError):
        return ""
    unread = [e for e in failed.errors() if e["type"] == "get_attribute_error"]
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in unread)


class UnexpectedErrorMiddleware(ASGIMiddleware):
    """Answers an exception nothing else handled with a JSON 500, and logs it once
    (Starlette's answers in plain text and re-raises: the server closes the connection)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        except Exception as failed:
            if started:
                raise  # half a response went out: the server logs it and closes the connection
            if unread := _not_loaded(failed):
                logger.error(_NOT_LOADED, scope["method"], scope["path"], unread)
            else:
                logger.exception("Unexpected error in %s %s", scope["method"], scope["path"])
            answer = error(status.HTTP_500_INTERNAL_SERVER_ERROR, "Internal server error.")
            await answer(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """Register the exception handlers (the middleware is in ``main.py``'s stack)."""
    app.add_exception_handler(ConflictError, _conflict)
    app.add_exception_handler(SQLAlchemyError, _database_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)
