"""What the database layer raises besides SQLAlchemy's errors, and what a failure means
(``engine.failure_of()`` tells, by the database's error code)."""

from enum import Enum


class ConflictError(Exception):
    """A write that conflicts with stored data, such as a name already taken."""


class Failure(Enum):
    """What a failed database operation means for the request that made it."""

    UNAVAILABLE = "unavailable"  # no connection, a server stopping, full, or read-only
    CONTENDED = "contended"  # a race lost (deadlock, serialization, lock): a retry can pass
    TIMED_OUT = "timed out"  # a statement past the statement timeout
    DUPLICATE = "duplicate"  # a unique (or primary key) constraint refused the write
    INTERNAL = "internal"  # anything else: a defect of the service or of its schema
