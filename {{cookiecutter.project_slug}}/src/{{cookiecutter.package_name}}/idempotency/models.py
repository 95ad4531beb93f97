"""The ``idempotency_keys`` table: the answer given to each write sent with a key."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from ..db.base import Base
from ..db.types import UTCDateTime

KEY_MAX_LENGTH = 255


class IdempotencyKey(Base):
    """A key a client sent with a write, and what it was answered.

    The row is written in the write's own transaction, its answer included:
    the write and the answer are stored together, or neither is. ``status``,
    ``headers`` and ``body`` are empty only inside that transaction.
    """

    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(String(KEY_MAX_LENGTH), primary_key=True)
    # The SHA-256 of the request (method, path, query, body): a key is for one request.
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[int | None] = mapped_column()
    headers: Mapped[list[Any] | None] = mapped_column(JSON)
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
