{% set is_async = cookiecutter.driver == "async" %}
{% set Session = "AsyncSession" if is_async else "Session" %}
"""Hot standbys: where a read-only unit of work reads, and reading one's own writes.

With ``DATABASE_REPLICA_URLS`` set, a read-only unit of work (a ``GET``,
``HEAD`` or ``OPTIONS`` request, ``open_session(writes=False)``) runs on a
standby in rotation, taking turns; every other unit of work runs on the
primary. Each standby is a ``Database`` of its own: its pool, sized like the
primary's, and its line of units waiting for a place.

**The consistency model.** A unit of work that wrote tells, once its commit
returned, the primary's WAL insert position: a point past its commit record
(``pg_current_wal_insert_lsn()``, which a commit with ``synchronous_commit``
off has reached too). A request's units read after the position its client
sent (``consistency.py``: the ``Consistency-Token`` header or cookie) and
after whatever the request itself wrote: such a read runs on a standby only
once the connection it reads on has replayed that far
(``pg_last_wal_replay_lsn()``, asked on that very connection, so that one
address in front of several standbys is no risk), waiting at most
``DB_REPLICA_WAIT`` seconds, and on the primary otherwise. A client that sends
back its token reads its own writes, and never goes back in time behind them.
A read without a token sees committed data at most ``DB_REPLICA_MAX_LAG``
seconds old.

A token is a position, not a secret, and costs no more than a read: one past
what the primary had written when this worker last looked (a made-up one, or
one from another worker's write of the last moment) is read on the primary at
once, never waited for; so is a read whose standby has no free connection.

**Rotation.** Every ``DB_REPLICA_CHECK_INTERVAL`` seconds each worker notes
where the primary's WAL is, and asks each standby whether it is still in
recovery and how far it has replayed. A standby's lag is how long ago the
primary was where the standby has replayed to — so a standby that stopped
receiving (a partition, a removed WAL segment, rotated credentials) lags more
every second while the primary writes, though it has replayed all it
received. One that is down, lags by more than ``DB_REPLICA_MAX_LAG``, or was
promoted leaves the rotation until a check finds it well again. A unit of
work that cannot connect to its standby, or whose statement finds it going
away, takes it out at once and reads from the primary instead: never a 503
for a standby's sake.
"""

import asyncio
import bisect
import itertools
import logging
import re
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from anyio import CancelScope
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
{% if is_async %}
from sqlalchemy.ext.asyncio import AsyncSession
{% endif %}
from sqlalchemy.orm import ORMExecuteState, Session

from ..settings import Settings
from .engine import failure_of
from .errors import Failure
from .unit import Database, UnitSession

logger = logging.getLogger(__name__)

# A WAL position as PostgreSQL writes it: two hexadecimal halves of 64 bits.
_POSITION = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")
_RECOVERY = text("SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text")
_REPLAYED = text("SELECT pg_last_wal_replay_lsn()::text")
_WRITTEN = text("SELECT pg_current_wal_insert_lsn()::text")
_AUTOCOMMIT = {"isolation_level": "AUTOCOMMIT"}
# Seconds between a waiting read's looks at its standby's replay position.
_POLL = 0.005


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
    """What the units of work of one request must read after, and what they wrote."""

    def __init__(self, read_after: int | None) -> None:
        self.read_after = read_after
        self.written: int | None = None

    @property
    def required(self) -> int | None:
        """The position a standby must have replayed to serve a read of this request."""
        known = [p for p in (self.read_after, self.written) if p is not None]
        return max(known, default=None)


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


class StandbySession(UnitSession):
    """A session on a standby; ``info["standby"]`` is it, until it is given up for the primary."""


class Standby(Database):
    """One hot standby: a ``Database`` of its own, and what the checks learned of it."""

    session_class = StandbySession

    def __init__(self, settings: Settings, primary: Database) -> None:
        super().__init__(settings)
        self.primary = primary
        url = make_url(settings.database_url)
        self.name = f"{url.host or 'localhost'}:{url.port or 5432}"
        # Out of rotation until the first check finds it well.
        self.in_rotation = False
        # How far it had replayed, and how many seconds behind the primary, at its last check.
        self.replayed = 0
        self.lag = 0.0
        # Read-only units of work it began.
        self.reads = 0

    @property
    def full(self) -> bool:
        """Whether a unit of work beginning here now would wait for a connection."""
        return self._places.locked()

    def take_out(self, why: str) -> None:
        if self.in_rotation:
            logger.warning("Standby %s is out of rotation: %s", self.name, why)
        self.in_rotation = False

    def put_back(self) -> None:
        if not self.in_rotation:
            logger.info("Standby %s is in rotation", self.name)
        self.in_rotation = True


class ReplicatedDatabase(Database):
    """The primary, and the standbys its read-only units of work read from (see above)."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.standbys = [
            Standby(settings.model_copy(update={"database_url": url}), self)
            for url in settings.database_replica_urls
        ]
        self.wait = settings.db_replica_wait
        self.max_lag = settings.db_replica_max_lag
        self._turns = itertools.count()
        # Where each check found the primary's WAL, and when (time.monotonic()).
        self._history: deque[tuple[float, int]] = deque()
        # How far the primary's WAL was, as far as this worker knows: its checks, its writes.
        self.written = 0
        # Read-only units of work the primary served.
        self.primary_reads = 0

    async def begin(
        self, *, writes: bool = True, name: str = "A unit of work", primary: bool = False
    ) -> {{ Session }}:
        """``Database.begin()``; ``primary``: on the primary, even a unit that only reads
        (``open_session(primary=True)``)."""
        if not writes and not primary:
            session = await self._begin_on_a_standby(name)
            if session is not None:
                return session
            self.primary_reads += 1
        return await super().begin(writes=writes, name=name)

    async def end(self, session: {{ Session }}, *, commit: bool) -> None:
        standby: Standby | None = session.info.get("standby")
        if standby is not None:
            await standby.end(session, commit=commit)
        elif session.info.get("gave_up") is not None:
            await session.info["gave_up"].end(session, commit=commit)
        else:
            await super().end(session, commit=commit)

    def after_commit(self, session: Session) -> None:
        """The primary's WAL position after a unit that wrote, for its request's token."""
        positions = _POSITIONS.get()
        if positions is None or not session.info["writes"] or not self.standbys:
            return
        try:
            written = session.connection(execution_options=_AUTOCOMMIT).scalar(_WRITTEN)
        except SQLAlchemyError:
            logger.warning("The WAL position after a commit could not be read", exc_info=True)
            return  # the commit stands; its token is lost
        position = parse_position(written)
        if position is not None:
            positions.written = max(position, positions.written or 0)
            self.written = max(self.written, position)

    async def ping(self) -> None:
        """Raise unless the primary answers a query (standbys alone cannot take writes)."""
        async with self.open_session(writes=False, name="ping()", primary=True) as session:
            await self.run(session, Session.execute, text("SELECT 1"))

    async def dispose(self) -> None:
        for standby in self.standbys:
            await standby.dispose()
        await super().dispose()

    async def watch(self, interval: float) -> None:
        """Check the primary and each standby every ``interval`` seconds, and take each
        standby out of rotation or put it back by what it says; runs until cancelled."""
        while True:
            if self.standbys:
                await self._check()
            await asyncio.sleep(interval)

    async def _begin_on_a_standby(self, name: str) -> {{ Session }} | None:
        """A read-only session on a standby in rotation that has replayed what this request
        must see, within ``DB_REPLICA_WAIT``; ``None``: read from the primary."""
        ready = [standby for standby in self.standbys if standby.in_rotation]
        if not ready:
            return None
        turn = next(self._turns)
        standby = ready[turn % len(ready)]
        positions = _POSITIONS.get()
        required = positions.required if positions is not None else None
        if required is not None:
            if required > self.written:
                return None  # made up, or written since this worker last looked: the primary
            # One known to have replayed that far, else this turn's if it may get there in time.
            known = [standby for standby in ready if standby.replayed >= required]
            if known:
                standby = known[turn % len(known)]
            elif standby.lag > self.wait:
                return None  # waiting would only hold one of its connections
        if standby.full:
            return None
        try:
            session = await standby.begin(writes=False, name=name)
        except (DBAPIError, OSError) as error:
            # Down, starting, refusing this service: its reads go elsewhere meanwhile.
            standby.take_out(f"it cannot be reached ({type(error).__name__})")
            return None
        session.info["standby"] = standby
        try:
            if required is not None and not await self._replayed(standby, session, required):
                await standby.end(session, commit=False)
                return None
        except BaseException:
            with CancelScope(shield=True):
                await standby.end(session, commit=False)
            raise
        standby.reads += 1
        return session

    async def _replayed(self, standby: Standby, session: {{ Session }}, required: int) -> bool:
        """Whether ``session``'s own connection has replayed ``required`` within the wait."""
        waited_out = time.monotonic() + self.wait
        while True:
            try:
                replayed = await standby.run(session, _replayed_on)
            except DBAPIError:
                standby.take_out("it stopped answering")
                return False
            if replayed >= required:
                return True
            if time.monotonic() >= waited_out:
                return False
            await asyncio.sleep(min(_POLL, max(waited_out - time.monotonic(), 0)))

    async def _check(self) -> None:
        try:
            name = "A check of the primary"
            async with self.open_session(writes=False, name=name, primary=True) as session:
                written = parse_position(await self.run(session, Session.scalar, _WRITTEN))
        except SQLAlchemyError:
            written = None  # the primary does not answer; the standbys are judged as before
        now = time.monotonic()
        if written is not None:
            self.written = max(self.written, written)
            self._history.append((now, written))
        # Twice DB_REPLICA_MAX_LAG of history: enough to tell a standby past it.
        while self._history and self._history[0][0] < now - 2 * self.max_lag:
            self._history.popleft()
        for standby in self.standbys:
            self._judge(standby, await _state_of(standby))

    def _lag_of(self, replayed: int) -> float:
        """Seconds since the primary's WAL first went past ``replayed``, as the checks saw it."""
        past = bisect.bisect_right([position for _, position in self._history], replayed)
        if past == len(self._history):
            return 0.0  # as far as the primary was at its last check
        return time.monotonic() - self._history[past][0]

    def _judge(self, standby: Standby, state: tuple[bool, int | None] | None) -> None:
        if state is None:
            standby.take_out("it cannot be reached")
            return
        in_recovery, replayed = state
        if not in_recovery or replayed is None:
            standby.take_out("it is not in recovery: it was promoted, or is no standby")
            return
        standby.replayed = max(standby.replayed, replayed)
        standby.lag = self._lag_of(standby.replayed)
        if standby.lag > self.max_lag:
            standby.take_out(
                f"it replays {standby.lag:.1f} s behind (DB_REPLICA_MAX_LAG={self.max_lag:g})"
            )
        else:
            standby.put_back()


async def _state_of(standby: Standby) -> tuple[bool, int | None] | None:
    """Whether ``standby`` is in recovery and how far it replayed; ``None``: no answer."""
    try:
        async with standby.open_session(writes=False, name="A standby's check") as session:
            in_recovery, replayed = (await standby.run(session, Session.execute, _RECOVERY)).one()
    except (SQLAlchemyError, OSError):
        return None
    return bool(in_recovery), parse_position(replayed)


def _replayed_on(session: Session) -> int:
    """How far the session's own connection's standby has replayed (0: nothing yet)."""
    return parse_position(session.connection().scalar(_REPLAYED)) or 0


@event.listens_for(StandbySession, "do_orm_execute", insert=True)
def _on_the_primary_if_the_standby_goes(execution: ORMExecuteState) -> Any:
    """A statement that finds its standby going away (shutting down, unreachable) runs on
    the primary instead. A read-only unit reads nothing older there, and in autocommit
    each statement is a transaction of its own: the unit may read on from the primary."""
    session = execution.session
    standby: Standby | None = session.info.get("standby")
    if standby is None:
        return None
    try:
        return execution.invoke_statement()
    except DBAPIError as error:
        if failure_of(error) is not Failure.UNAVAILABLE:
            raise
        standby.take_out(f"a statement found it going away ({type(error.orig).__name__})")
    try:
        session.rollback()
    except DBAPIError:
        session.invalidate()
    session.info["gave_up"] = session.info.pop("standby")
    session.bind = standby.primary.engine{{ ".sync_engine" if is_async }}
    return execution.invoke_statement()
