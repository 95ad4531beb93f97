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

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.{{ cookiecutter.database }} import insert
from sqlalchemy.orm import Session

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


def claim(session: Session, key: str, fingerprint: str, ttl: float) -> StoredAnswer | None:
    """Claim ``key`` for the request with ``fingerprint``: ``None`` once it is this unit
    of work's, or the earlier request's row. An expired key is claimed anew."""
    now = datetime.now(UTC)
    session.execute(
        delete(IdempotencyKey).where(IdempotencyKey.key == key, IdempotencyKey.expires_at <= now)
    )
    claimed = session.execute(
        insert(IdempotencyKey)
        .values(key=key, fingerprint=fingerprint, expires_at=now + timedelta(seconds=ttl))
        .on_conflict_do_nothing()
        .returning(IdempotencyKey.key)
    ).first()
    if claimed is not None:
        return None
    earlier = session.execute(
        select(
            IdempotencyKey.fingerprint,
            IdempotencyKey.status,
            IdempotencyKey.headers,
            IdempotencyKey.body,
        ).where(IdempotencyKey.key == key)
    ).one()
    return StoredAnswer(*earlier)


def store_answer(
    session: Session, key: str, status: int, headers: list[list[str]], body: bytes
) -> None:
    """Store the answer to the request that claimed ``key``, before its unit commits."""
    session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.key == key)
        .values(status=status, headers=headers, body=body)
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
