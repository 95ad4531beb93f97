"""GET /items/{id} and POST /items driven in-process, for ``instructions.py``: run by a
baked project's interpreter under callgrind, which counts only the requests themselves.

    python drive.py CASE N

CASE is one of ``CASES``. After the application started and served ``WARM``
requests, the driver prints ``ready`` and waits for a line on stdin (the caller
switches callgrind's instrumentation on), serves ``N`` requests, prints
``done`` and waits again (off) before it stops. Creates are named uniquely,
each with an ``Idempotency-Key`` of its own in the ``-keyed`` case.
"""

import asyncio
import itertools
import json
import os
import random
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvloop

APPS = Path(__file__).resolve().parent / "apps"
WARM = 50
SEED = 1000
# Names this run's creates apart from any other's.
RUN = os.urandom(4).hex()
Step = Callable[[], Awaitable[None]]


def scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1", "method": method, "scheme": "http", "path": path,
        "raw_path": path.encode(), "root_path": "", "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000"), *headers],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
    }  # fmt: skip


def get() -> tuple[dict[str, Any], bytes, int]:
    return scope("GET", f"/items/{random.randint(1, SEED)}", []), b"", 200


def post(keyed: bool = False) -> Callable[[], tuple[dict[str, Any], bytes, int]]:
    numbers = itertools.count()

    def request() -> tuple[dict[str, Any], bytes, int]:
        n = next(numbers)
        body = json.dumps({"name": f"drive-{RUN}-{n}", "description": "driven"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        if keyed:
            headers.append((b"idempotency-key", f"drive-{RUN}-{n}".encode()))
        return scope("POST", "/items", headers), body, 201

    return request


async def served(
    app: Any, request: Callable[[], tuple[dict[str, Any], bytes, int]] = get
) -> tuple[Step, Callable[[], Awaitable[None]]]:
    """``app`` started (its lifespan), a step that sends it one ``request()``, and its stop."""
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    state: dict[str, Any] = {}
    lifespan = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": state}
    running = asyncio.create_task(app(lifespan, events.get, replies.put))
    await events.put({"type": "lifespan.startup"})
    started = await replies.get()
    assert started["type"] == "lifespan.startup.complete", started

    async def step() -> None:
        http, content, status = request()
        body = {"type": "http.request", "body": content, "more_body": False}
        answered: list[int] = []

        async def receive() -> dict[str, Any]:
            return body

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answered.append(message["status"])

        await app({**http, "state": dict(state)}, receive, send)
        assert answered == [status], answered

    async def stop() -> None:
        await events.put({"type": "lifespan.shutdown"})
        await replies.get()
        await running

    return step, stop


async def variant(
    middleware: bool = True, request: Callable[[], tuple[dict[str, Any], bytes, int]] = get
) -> tuple[Step, Callable[[], Awaitable[None]]]:
    from my_service import main

    if not middleware:
        main.middleware = lambda _settings: []
    return await served(main.create_app(), request)


async def variant_unit() -> tuple[Step, Callable[[], Awaitable[None]]]:
    """The variant's database layer alone: a read-only unit of work and the repository's get."""
    from my_service.db.unit import Database
    from my_service.items.repository import ItemRepository
    from my_service.settings import get_settings

    database = Database(get_settings())

    async def step() -> None:
        async with database.open_session(writes=False, name="GET /items/{item_id}") as session:
            assert await ItemRepository(session).get(random.randint(1, SEED)) is not None

    return step, database.dispose


def app_module(name: str) -> Any:
    sys.path.insert(0, str(APPS))
    return __import__(name)


async def lean(
    request: Callable[[], tuple[dict[str, Any], bytes, int]] = get,
) -> tuple[Step, Callable[[], Awaitable[None]]]:
    return await served(app_module("lean_async").app, request)


async def lean_session() -> tuple[Step, Callable[[], Awaitable[None]]]:
    """The lean app's database work alone: its session, ``session.get``."""
    module = app_module("lean_async")

    async def step() -> None:
        async with module.SessionLocal() as session:
            assert await session.get(module.Item, random.randint(1, SEED)) is not None

    return step, module.engine.dispose


async def fastapi_raw() -> tuple[Step, Callable[[], Awaitable[None]]]:
    return await served(app_module("fastapi_raw").app)


CASES: dict[str, Callable[[], Awaitable[tuple[Step, Callable[[], Awaitable[None]]]]]] = {
    "variant": variant,
    "variant-post": lambda: variant(request=post()),
    "variant-post-keyed": lambda: variant(request=post(keyed=True)),
    "variant-no-middleware": lambda: variant(middleware=False),
    "variant-unit-of-work": variant_unit,
    "lean": lean,
    "lean-post": lambda: lean(post()),
    "lean-session": lean_session,
    "fastapi-raw": fastapi_raw,
}


def flush_traces() -> None:
    """Send the spans a bake with the tracing wing still holds, when it exports: the warm-up's
    before the count, the requests' within it."""
    try:
        from opentelemetry import trace
    except ImportError:
        return
    force_flush = getattr(trace.get_tracer_provider(), "force_flush", None)
    if force_flush is not None:
        force_flush()


def handshake(word: str) -> None:
    print(word, flush=True)
    sys.stdin.readline()


async def main(case: str, requests: int) -> None:
    step, stop = await CASES[case]()
    for _ in range(WARM):
        await step()
    flush_traces()
    handshake("ready")
    for _ in range(requests):
        await step()
    flush_traces()
    handshake("done")
    await stop()


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1], int(sys.argv[2])))
