"""The ``jobs`` table: the outbox. A job is a row, added in the transaction of the write
that causes it, and it stays the job's one record until it is handled or dead."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from ..db.base import Base
from ..db.types import IdKey

NAME_MAX_LENGTH = 100
{% if cookiecutter.tracing %}
TRACEPARENT_MAX_LENGTH = 55  # version 00: 2 + 32 + 16 + 2 hex digits, 3 dashes
{% endif %}
# Neither handled nor dead: to be sent, or sent and not yet handled.
OUTSTANDING = text("handled_at IS NULL AND dead_at IS NULL")


class Job(Base):
    """What a handler must do once: ``name`` says which handler (``jobs/handlers.py``),
    ``payload`` with what. The relay sends it when it is due (``sent_at``); a handler
    marks it handled in the transaction of its effects; after ``JOBS_MAX_ATTEMPTS``
    failed tries it is dead, until an operator replays it."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index(
            "ix_jobs_outstanding",
            "due_at",
            postgresql_where=OUTSTANDING,
            sqlite_where=OUTSTANDING,
        ),
        Index("ix_jobs_handled_at", "handled_at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[IdKey]
    name: Mapped[str] = mapped_column(String(NAME_MAX_LENGTH))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # When it is next sent: at once, or after a failed try's backoff.
    due_at: Mapped[datetime] = mapped_column(server_default=func.now())
    sent_at: Mapped[datetime | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    handled_at: Mapped[datetime | None] = mapped_column()
    dead_at: Mapped[datetime | None] = mapped_column()
{% if cookiecutter.tracing %}
    # The W3C traceparent of the span that recorded it: its handler's span links to it.
    traceparent: Mapped[str | None] = mapped_column(String(TRACEPARENT_MAX_LENGTH))
{% endif %}
