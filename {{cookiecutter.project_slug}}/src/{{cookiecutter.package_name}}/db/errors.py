"""What the database layer raises besides SQLAlchemy's own errors, and what a
failure of the database means (``engine.failure_of()`` tells, by the
database's own error code, not by the Python class that carries it)."""

from enum import Enum


class ConflictError(Exception):
    """A write that conflicts with stored data, such as a name already taken."""


class Failure(Enum):
    """What a failed database operation means for the request that made it."""

    # The database cannot serve now: no connection, the connection lost, the server
    # starting or stopping, out of connections or space, or only a read-only standby.
    UNAVAILABLE = "unavailable"
    # The transaction lost a race with another (a deadlock, a serialization failure,
    # a lock not granted in time): the same request, made again, can succeed.
    CONTENDED = "contended"
    # A statement ran past the statement timeout.
    TIMED_OUT = "timed out"
    # A unique (or primary key) constraint refused the write.
    DUPLICATE = "duplicate"
    # Anything else: a defect of the service, or of its schema.
    INTERNAL = "internal"
