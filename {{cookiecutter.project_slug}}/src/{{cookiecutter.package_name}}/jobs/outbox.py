{% set is_pg = cookiecutter.database == "postgresql" %}
"""The outbox's statements: plain functions of a ``Session``, run in a unit of work
(``Database.run``). A job's life: ``record()`` with the write that causes it;
``due()`` (the relay) sends it; ``claim()`` marks it handled in the transaction of
its effects; ``failed()`` after a failed try, due again later or dead; ``replay()``
makes dead ones due again.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

{% if cookiecutter.tracing %}
from .. import tracing
{% endif %}
from .models import OUTSTANDING, Job


@dataclass(frozen=True)
class Claimed:
    """A job a handler now owns: handled, once its unit of work commits."""

    id: int
    name: str
    payload: dict[str, Any]
    attempts: int
{% if cookiecutter.tracing %}
    traceparent: str | None
{% endif %}


def record(session: Any, name: str, payload: dict[str, Any]) -> None:
    """Add a job to ``session``'s transaction (a ``Session`` or an ``AsyncSession``): it
    is stored with the write, or not at all."""
{% if cookiecutter.tracing %}
    session.add(Job(name=name, payload=payload, traceparent=tracing.traceparent()))
{% else %}
    session.add(Job(name=name, payload=payload))
{% endif %}


def due(session: Session, *, limit: int, resend_after: float) -> Sequence[int]:
    """Mark as sent, and answer, up to ``limit`` jobs to send: those due and not yet sent,
    and those sent over ``resend_after`` seconds ago and not handled (their message was
    lost, or the worker that took it died). {{ "Jobs that another relay is sending, or a" if is_pg else "SQLite's write lock makes relays take turns." }}
{% if is_pg %}
    handler is handling, are skipped (``SKIP LOCKED``).
{% endif %}
    """
    now = datetime.now(UTC)
    unsent = Job.sent_at.is_(None) & (Job.due_at <= now)
    lost = Job.sent_at <= now - timedelta(seconds=resend_after)
    ids = session.scalars(
        select(Job.id)
        .where(OUTSTANDING, unsent | lost)
        .order_by(Job.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if ids:
        session.execute(update(Job).where(Job.id.in_(ids)).values(sent_at=now))
    return ids


def claim(session: Session, job_id: int) -> Claimed | None:
    """Mark the job handled, unless it is handled or dead already (a second delivery:
    ``None``). Concurrent claims of one job take turns: the second finds it handled."""
    row = session.execute(
        update(Job)
        .where(Job.id == job_id, OUTSTANDING)
        .values(handled_at=datetime.now(UTC))
        .returning(Job.id, Job.name, Job.payload, Job.attempts{{ ", Job.traceparent" if cookiecutter.tracing }})
    ).one_or_none()
    return None if row is None else Claimed(*row)


def failed(
    session: Session, job: Claimed, error: str, *, max_attempts: int, backoff: float
) -> bool:
    """Count a failed try: due again after ``backoff`` seconds, doubled at each try, or
    dead after ``max_attempts``; whether it is dead."""
    attempts = job.attempts + 1
    now = datetime.now(UTC)
    values: dict[str, Any] = {"attempts": attempts, "last_error": error[:2000]}
    if attempts >= max_attempts:
        values["dead_at"] = now
    else:
        values |= {
            "sent_at": None,
            "due_at": now + timedelta(seconds=backoff * 2 ** (attempts - 1)),
        }
    session.execute(update(Job).where(Job.id == job.id, OUTSTANDING).values(values))
    return attempts >= max_attempts


def dead(session: Session) -> Sequence[Job]:
    """The dead jobs, oldest first."""
    return session.scalars(select(Job).where(Job.dead_at.is_not(None)).order_by(Job.id)).all()


def replay(session: Session, ids: Sequence[int] | None) -> int:
    """Make dead jobs (those of ``ids``, or all) due now, with their tries counted
    afresh; how many."""
    statement = update(Job).where(Job.dead_at.is_not(None))
    if ids is not None:
        statement = statement.where(Job.id.in_(ids))
    result = session.execute(
        statement.values(dead_at=None, sent_at=None, attempts=0, due_at=datetime.now(UTC))
    )
    return result.rowcount  # type: ignore[attr-defined,no-any-return]


def purge_handled(session: Session, *, older_than: float, limit: int) -> int:
    """Delete up to ``limit`` jobs handled over ``older_than`` seconds ago; how many."""
    before = datetime.now(UTC) - timedelta(seconds=older_than)
    ids = select(Job.id).where(Job.handled_at < before).limit(limit).scalar_subquery()
    result = session.execute(delete(Job).where(Job.id.in_(ids)))
    return result.rowcount  # type: ignore[attr-defined,no-any-return]


def outstanding(session: Session) -> int:
    """How many jobs are neither handled nor dead."""
    return session.scalar(select(func.count()).select_from(Job).where(OUTSTANDING)) or 0
