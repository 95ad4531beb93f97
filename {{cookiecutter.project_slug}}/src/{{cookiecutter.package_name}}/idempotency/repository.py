{% set is_pg = cookiecutter.database == "postgresql" %}
"""Claiming a key, storing its answer and purging expired keys.

Plain functions of a ``Session``, run in the write's own unit of work
(``Database.run``). ``claim()`` inserts the key before the write runs, in the
same transaction.
{% if is_pg %}
A second request with a key still in flight — its first request's
transaction still open — is refused at once (``KeyInFlightError``: a 409 to
retry later) instead of waiting for it at the key's unique index with a
connection held: the first request holds a transaction-scoped advisory lock
on the key, which the claim only tries to take.
{% else %}
A second request with the same key waits for the first one's transaction, as
every SQLite writer waits for the write lock; it then reads the stored
answer, or, if the first one was rolled back, claims the key itself.
{% endif %}
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    JSON,
    LargeBinary,
    String,
    Table,
    bindparam,
    delete,
{% if is_pg %}
    func,
{% endif %}
    select,
    update,
)
from sqlalchemy.dialects.{{ cookiecutter.database }} import insert
from sqlalchemy.orm import Session

from ..db.types import UTCDateTime
from .models import IdempotencyKey

# Expired keys deleted per statement by purge_expired().
PURGE_BATCH = 1000


{% if is_pg %}
class KeyInFlightError(Exception):
    """The key's first request is still running."""


{% endif %}@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """What an earlier request with a key was answered (``None`` in its own transaction)."""

    fingerprint: str
    status: int | None
    headers: list[list[str]] | None
    body: bytes | None


# Built once, with bound parameters: a keyed write builds no statement.
# (Named apart from the columns: SQLAlchemy keeps those names for its own parameters.)
_CLAIMED: dict[str, Any] = {
    "fingerprint": bindparam("b_fingerprint", type_=String()),
    "expires_at": bindparam("b_expires_at", type_=UTCDateTime()),
}
# The table itself: the claim is a plain statement, not one of the ORM's bulk inserts.
_KEYS = cast(Table, IdempotencyKey.__table__)
{% if is_pg %}
# The row, if this transaction gets the key's advisory lock: no one else is claiming it.
_UNCLAIMED = select(
    bindparam("b_key", type_=String()), _CLAIMED["fingerprint"], _CLAIMED["expires_at"]
).where(func.pg_try_advisory_xact_lock(func.hashtextextended(bindparam("b_key"), 0)))
_INSERT = insert(_KEYS).from_select(["key", "fingerprint", "expires_at"], _UNCLAIMED)
{% else %}
_INSERT = insert(_KEYS).values(key=bindparam("b_key"), **_CLAIMED)
{% endif %}
_CLAIM = _INSERT.on_conflict_do_update(
    index_elements=[_KEYS.c.key],
    set_={**_CLAIMED, "status": None, "headers": None, "body": None},
    where=_KEYS.c.expires_at <= bindparam("b_now", type_=UTCDateTime()),
).returning(_KEYS.c.key)
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
{% if is_pg %}
    earlier = session.execute(_EARLIER, {"b_key": key}).first()
    if earlier is None:
        raise KeyInFlightError(key)  # claimed by a transaction not yet committed
    return StoredAnswer(*earlier)
{% else %}
    return StoredAnswer(*session.execute(_EARLIER, {"b_key": key}).one())
{% endif %}


def store_answer(
    session: Session, key: str, status: int, headers: list[list[str]], body: bytes
) -> None:
    """Store the answer to the request that claimed ``key``, before its unit commits."""
    session.execute(
        _ANSWER, {"b_key": key, "b_status": status, "b_headers": headers, "b_body": body}
    )


def purge_expired(session: Session, now: datetime | None = None) -> int:
    """Delete up to ``PURGE_BATCH`` keys expired by ``now``; how many were deleted.

    The condition is asked of each row as it is deleted, too: a key claimed anew
    meanwhile (its expiry moved on) is no longer expired, and stays."""
    expired_by = now or datetime.now(UTC)
    expired = (
        select(IdempotencyKey.key).where(IdempotencyKey.expires_at <= expired_by).limit(PURGE_BATCH)
    )
    result: Any = session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.key.in_(expired), IdempotencyKey.expires_at <= expired_by
        )
    )
    return int(result.rowcount)
