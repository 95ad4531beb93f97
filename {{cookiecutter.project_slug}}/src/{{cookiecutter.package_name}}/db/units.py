"""What every unit of work does, whichever the driver; ``transaction.py`` runs it.

Every unit of work has a ``UnitSession``. ``finish`` ends it in one blocking
call: commit (or roll back), then close. The async driver runs that in one
greenlet, the sync one in one thread hop.

A read-only unit of work (a GET, HEAD or OPTIONS request, or
``open_session(writes=False)``) is cheaper: its connection carries the
execution option ``writes=False``, which ``engine.py`` turns into autocommit on
PostgreSQL (no BEGIN and COMMIT round trips) and a deferred transaction, without
the write lock, on SQLite. So it must not write: its session refuses to flush
changes and to execute an INSERT, UPDATE or DELETE, with a ``ReadOnlyError``
(a 500), before the database sees them. Statements written as SQL text, or run
on the connection itself, are not inspected.
"""

import logging
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.orm import ORMExecuteState, Session

logger = logging.getLogger(__name__)


class ReadOnlyError(InvalidRequestError):
    """A read-only unit of work tried to write."""


class UnitSession(Session):
    """The session of a unit of work; ``info["writes"]`` is what it promised (see above)."""


@event.listens_for(UnitSession, "do_orm_execute")
def _refuse_write_statements(execution: ORMExecuteState) -> None:
    read_only = not execution.session.info.get("writes", True)
    if read_only and (execution.is_insert or execution.is_update or execution.is_delete):
        raise ReadOnlyError(f"A read-only unit of work cannot run {execution.statement}")


@event.listens_for(UnitSession, "before_flush")
def _refuse_changes(session: Session, _context: Any, _instances: Any) -> None:
    if not session.info.get("writes", True):
        raise ReadOnlyError("A read-only unit of work cannot flush changes")


def finish(session: Session, commit: bool) -> None:
    """Commit (or roll back), then close ``session``. A failed commit is rolled back
    and raised; a failed rollback is logged and the connection discarded."""
    try:
        if commit:
            try:
                session.commit()
            except BaseException:
                _roll_back(session)
                raise
        else:
            _roll_back(session)
    finally:
        session.close()


def _roll_back(session: Session) -> None:
    try:
        session.rollback()
    except Exception:
        # The transaction is lost either way; the connection must not be reused.
        logger.warning("Rollback failed; discarding the connection", exc_info=True)
        session.invalidate()
