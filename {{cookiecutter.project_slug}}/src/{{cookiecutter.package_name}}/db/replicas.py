{% set is_async = cookiecutter.driver == "async" %}
"""Hot standbys: where a read-only unit of work reads, and reading one's own writes.

With ``DATABASE_REPLICA_URLS`` set, a read-only unit of work (a ``GET``,
``HEAD`` or ``OPTIONS`` request, ``open_session(writes=False)``) runs on a
standby in rotation, taking turns; every other unit of work runs on the
primary. Each standby has a pool of its own, sized like the primary's.

**The consistency model.** A unit of work that wrote tells, once its commit
returned, the primary's WAL position: a point at or past its commit record
(``pg_current_wal_lsn()``). A request's units of work read after the
position its client sent (``consistency.py``: the ``Consistency-Token``
header or cookie) and after whatever the request itself wrote: a standby
serves such a read only once it has replayed that far
(``pg_last_wal_replay_lsn()``), waiting at most ``DB_REPLICA_WAIT`` seconds
(not at all when its last check found it lagging by more), and the primary
serves it otherwise. So a client that sends back its token
reads its own writes, and never goes back in time behind them. A read
without a token sees committed data at most the standby's lag old: up to
``DB_REPLICA_MAX_LAG`` seconds.

**Rotation.** Every ``DB_REPLICA_CHECK_INTERVAL`` seconds each worker asks
each standby whether it is still in recovery and how far behind it replays.
One that is down, lags by more than ``DB_REPLICA_MAX_LAG``, or was promoted
(it is no primary's standby any more) leaves the rotation until a check finds
it well again; a unit of work that could not connect to one takes it out at
once and reads from another server. Its reads go to the other standbys, or to
the primary: never a 503 for a standby's sake.

A token is a position, not a secret: one made up, or from the future, can only
cost its own requests ``DB_REPLICA_WAIT`` and send them to the primary.
"""

import asyncio
import itertools
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from prometheus_client import Counter, Gauge
from sqlalchemy import {{ "" if is_async else "Engine, " }}text
from sqlalchemy.engine import make_url
{% if is_async %}
from sqlalchemy.ext.asyncio import AsyncEngine
{% endif %}
from sqlalchemy.orm import Session
from sqlalchemy.pool import QueuePool

logger = logging.getLogger(__name__)

# A WAL position as PostgreSQL writes it: two hexadecimal halves of 64 bits.
_POSITION = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")
PRIMARY = "primary"

READS = Counter(
    "db_reads_total", "Read-only units of work, by the server they read from", ["server"]
)
STANDBY_LAG = Gauge(
    "db_standby_lag_seconds",
    "How far behind the primary each standby replays, as its last check found",
    ["standby"],
    multiprocess_mode="liveall",
)
STANDBY_IN_ROTATION = Gauge(
    "db_standby_in_rotation",
    "1 while a standby serves reads, 0 while it is down, lagging or promoted",
    ["standby"],
    multiprocess_mode="liveall",
)
# Each standby's pool, as db_pool_size, db_pool_checked_out and db_pool_overflow say the primary's.
STANDBY_POOL_SIZE = Gauge(
    "db_standby_pool_size",
    "Connections each standby's pool keeps open (DB_POOL_SIZE)",
    ["standby"],
    multiprocess_mode="livesum",
)
STANDBY_POOL_CHECKED_OUT = Gauge(
    "db_standby_pool_checked_out",
    "Connections to each standby lent to a unit of work",
    ["standby"],
    multiprocess_mode="livesum",
)
STANDBY_POOL_OVERFLOW = Gauge(
    "db_standby_pool_overflow",
    "Connections open to each standby beyond DB_POOL_SIZE",
    ["standby"],
    multiprocess_mode="livesum",
)

# How a standby says where it stands: still a standby, replayed how far, how long ago.
# Caught up with what it received, it lags by nothing, however old its last replay.
_STATE = text(
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,"
    " CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn()"
    " THEN 0 ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0)"
    " END"
)
_REPLAYED = text("SELECT pg_last_wal_replay_lsn()::text")
_WRITTEN = text("SELECT pg_current_wal_lsn()::text")


def parse_position(token: str | None) -> int | None:
    """The WAL position a token names, or ``None`` for none or a malformed one."""
    match = _POSITION.fullmatch(token.strip()) if token else None
    if match is None:
        return None
    return int(match[1], 16) << 32 | int(match[2], 16)


def format_position(position: int) -> str:
    """A WAL position as PostgreSQL writes it (``0/16B3748``): the token."""
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"


class Positions:
    """What the units of work of one request (or task) must read after, and what they wrote."""

    def __init__(self, read_after: int | None) -> None:
        self.read_after = read_after
        self.written: int | None = None

    @property
    def required(self) -> int | None:
        """The position a standby must have replayed to serve a read of this context."""
        known = [p for p in (self.read_after, self.written) if p is not None]
        return max(known, default=None)

    def wrote(self, position: int) -> None:
        self.written = max(position, self.written or 0)


_POSITIONS: ContextVar[Positions | None] = ContextVar("_POSITIONS", default=None)


@contextmanager
def reading_after(position: int | None) -> Iterator[Positions]:
    """Within the block, reads see what was committed up to ``position`` (a client's
    token) and whatever the block writes; what it wrote is in the ``Positions``."""
    positions = Positions(position)
    token = _POSITIONS.set(positions)
    try:
        yield positions
    finally:
        _POSITIONS.reset(token)


def positions() -> Positions | None:
    """The positions of the current request or task, if it tracks them."""
    return _POSITIONS.get()


class Standby:
    """One hot standby: its engine, and what the checks and reads learned of it."""

    def __init__(self, url: str, engine: {{ "AsyncEngine" if is_async else "Engine" }}, places: asyncio.Semaphore) -> None:
        parsed = make_url(url)
        self.name = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
        self.engine = engine
        # At most as many units of work hold its sessions as its pool has connections.
        self.places = places
        # Out of rotation until the first check finds it well.
        self.in_rotation = False
        self.replayed = 0
        # How far behind it replays, in seconds, as its last check found.
        self.lag = 0.0
        STANDBY_IN_ROTATION.labels(self.name).set(0)

    def saw(self, replayed: int) -> None:
        """It has replayed at least this far (positions only grow while it is a standby)."""
        self.replayed = max(self.replayed, replayed)

    def take_out(self, why: str) -> None:
        if self.in_rotation:
            logger.warning("Standby %s is out of rotation: %s", self.name, why)
        self.in_rotation = False
        STANDBY_IN_ROTATION.labels(self.name).set(0)

    def put_back(self) -> None:
        if not self.in_rotation:
            logger.info("Standby %s is in rotation", self.name)
        self.in_rotation = True
        STANDBY_IN_ROTATION.labels(self.name).set(1)

    def observe_pool(self) -> None:
        pool = self.engine.pool
        if isinstance(pool, QueuePool):
            STANDBY_POOL_SIZE.labels(self.name).set(pool.size())
            STANDBY_POOL_CHECKED_OUT.labels(self.name).set(pool.checkedout())
            STANDBY_POOL_OVERFLOW.labels(self.name).set(max(0, pool.overflow()))


class Replicas:
    """The standbys, taking turns to serve reads."""

    def __init__(self, standbys: list[Standby], *, wait: float, max_lag: float) -> None:
        self.standbys = standbys
        self.wait = wait
        self.max_lag = max_lag
        self._turns = itertools.count()

    def __bool__(self) -> bool:
        return bool(self.standbys)

    def in_turn(self) -> list[Standby]:
        """The standbys in rotation, the next one's turn first."""
        ready = [standby for standby in self.standbys if standby.in_rotation]
        if not ready:
            return []
        start = next(self._turns) % len(ready)
        return ready[start:] + ready[:start]

    def judge(self, standby: Standby, state: tuple[bool, int | None, float] | None) -> None:
        """Take ``standby`` out of rotation, or put it back, by what its check found
        (``None``: it could not be reached)."""
        if state is None:
            standby.take_out("it cannot be reached")
            return
        in_recovery, replayed, lag = state
        standby.lag = lag
        STANDBY_LAG.labels(standby.name).set(lag)
        if not in_recovery or replayed is None:
            standby.take_out("it is not in recovery: it was promoted, or is no standby")
        elif lag > self.max_lag:
            standby.take_out(f"it replays {lag:.1f} s behind (DB_REPLICA_MAX_LAG={self.max_lag:g})")
        else:
            standby.saw(replayed)
            standby.put_back()


def standby_state(session: Session) -> tuple[bool, int | None, float]:
    """Whether the session's server is in recovery, how far it replayed, its lag in seconds."""
    in_recovery, replayed, lag = session.execute(_STATE).one()
    return bool(in_recovery), parse_position(replayed), float(lag)


def replayed_position(session: Session) -> int:
    """How far the session's standby has replayed (0: nothing yet)."""
    return parse_position(session.execute(_REPLAYED).scalar_one()) or 0


def written_position(session: Session, options: dict[str, Any]) -> int | None:
    """The primary's WAL position now, just after the session committed: at or past its
    commit. ``None`` if the primary could not tell: the commit stands, its token is lost."""
    try:
        connection = session.connection(execution_options=options)
        return parse_position(connection.execute(_WRITTEN).scalar_one())
    except Exception:
        logger.warning("The WAL position after a commit could not be read", exc_info=True)
        return None


def record(server: str) -> None:
    READS.labels(server).inc()
