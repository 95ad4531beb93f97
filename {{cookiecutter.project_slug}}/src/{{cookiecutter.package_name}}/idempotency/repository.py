"""Claiming a key, storing its answer and purging expired keys.

Plain functions of a ``Session``, run in the write's own unit of work
(``Database.run``). ``claim()`` inserts the key before the write runs, so a
second request with the same key that arrives meanwhile waits for the first
one's transaction at the key's unique index{{ " (SQLite's writers wait for each other anyway)" if cookiecutter.database == "sqlite" }}:
it then reads the stored answer, or, if the first one was rolled back, claims
the key itself.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import JSON, LargeBinary, bindparam, delete, select, update
from sqlalchemy.dialects.{{ cookiecutter.database }} import insert
from sqlalchemy.orm import Session

from ..db.types import UTCDateTime
from .models import IdempotencyKey

# Expired keys deleted per statement by purge_expired().
PURGE_BATCH = 1000


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """What an earlier request with a key was answered (``None`` in its own transaction)."""

    fingerprint: str
    status: int | None
    headers: list[list[str]] | None
    body: bytes | None


# Built once, with bound parameters: a keyed write builds no statement.
# (Named apart from the columns: SQLAlchemy keeps those names for its own parameters.)
_CLAIMED: dict[str, Any] = {
    "fingerprint": bindparam("b_fingerprint"),
    "expires_at": bindparam("b_expires_at"),
}
_CLAIM = (
    insert(IdempotencyKey)
    .values(key=bindparam("b_key"), **_CLAIMED)
    .on_conflict_do_update(
        index_elements=[IdempotencyKey.key],
        set_={**_CLAIMED, "status": None, "headers": None, "body": None},
        where=IdempotencyKey.expires_at <= bindparam("b_now", type_=UTCDateTime()),
    )
    .returning(IdempotencyKey.key)
)
_EARLIER = select(
    IdempotencyKey.fingerprint, IdempotencyKey.status, IdempotencyKey.headers, IdempotencyKey.body
).where(IdempotencyKey.key == bindparam("b_key"))
_ANSWER = (
    update(IdempotencyKey)
    .where(IdempotencyKey.key == bindparam("b_key"))
    .values(
        status=bindparam("b_status"),
        headers=bindparam("b_headers", type_=JSON()),
        body=bindparam("b_body", type_=LargeBinary()),
    )
)


def claim(session: Session, key: str, fingerprint: str, ttl: float) -> StoredAnswer | None:
    """Claim ``key`` for the request with ``fingerprint``: ``None`` once it is this unit
    of work's, or the earlier request's answer. An expired key is claimed anew: one
    statement, an insert that takes an expired key's row over."""
    now = datetime.now(UTC)
    expires_at = now + timedelta(seconds=ttl)
    claimed = {"b_key": key, "b_fingerprint": fingerprint, "b_expires_at": expires_at, "b_now": now}
    if session.execute(_CLAIM, claimed).first() is not None:
        return None
    return StoredAnswer(*session.execute(_EARLIER, {"b_key": key}).one())


def store_answer(
    session: Session, key: str, status: int, headers: list[list[str]], body: bytes
) -> None:
    """Store the answer to the request that claimed ``key``, before its unit commits."""
    session.execute(
        _ANSWER, {"b_key": key, "b_status": status, "b_headers": headers, "b_body": body}
    )


def purge_expired(session: Session, now: datetime | None = None) -> int:
    """Delete up to ``PURGE_BATCH`` keys expired by ``now``; how many were deleted."""
    expired = (
        select(IdempotencyKey.key)
        .where(IdempotencyKey.expires_at <= (now or datetime.now(UTC)))
        .limit(PURGE_BATCH)
    )
    result: Any = session.execute(delete(IdempotencyKey).where(IdempotencyKey.key.in_(expired)))
    return int(result.rowcount)
