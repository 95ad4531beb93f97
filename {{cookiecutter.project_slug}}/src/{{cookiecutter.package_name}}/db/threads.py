"""Threads of their own for the blocking work of sync sessions.

The endpoints are plain ``def`` and run in FastAPI's threadpool (40 threads),
which also validates their responses. If a worker thread waited there for a
pooled connection, then under load every worker could be waiting for a
connection held by a request that needs a worker to finish its response and
commit: a deadlock, broken only by the pool timeout (503s).

So a session takes its connection before its endpoint runs, and commits, rolls
back and closes afterwards, in two small pools of threads of their own, each as
large as the connection pool. Waiting for a connection then blocks none of the
threads that would give one back.
"""

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.orm import Session


class SessionThreads:
    def __init__(self, connections: int) -> None:
        self._checkout = ThreadPoolExecutor(connections, thread_name_prefix="db-checkout")
        self._finish = ThreadPoolExecutor(connections, thread_name_prefix="db-finish")

    async def take_connection(self, session: Session) -> None:
        """Begin the session's transaction on a pooled connection, waiting for one if need be."""
        await asyncio.get_running_loop().run_in_executor(self._checkout, session.connection)

    async def finish(self, step: Callable[[], None]) -> None:
        """Run ``session.commit``, ``rollback`` or ``close``."""
        await asyncio.get_running_loop().run_in_executor(self._finish, step)

    def shutdown(self) -> None:
        self._checkout.shutdown()
        self._finish.shutdown()
