{% set is_async = cookiecutter.driver == "async" %}
{% set Session = "AsyncSession" if is_async else "Session" %}
"""What a job does: a handler, declared with ``@handler("a.unique.name")``.

A handler receives its unit of work's session and the job's payload. Its effects
and the job's mark as handled commit together, so a second delivery of the job
finds it handled and changes nothing. What it does outside the database (a webhook,
an email) may happen twice: send it with a key its receiver can drop repeats by.
"""

from collections.abc import {{ "Awaitable, " if is_async }}Callable
from dataclasses import dataclass
from typing import Any

{% if is_async %}
from sqlalchemy.ext.asyncio import AsyncSession
{% endif %}
from sqlalchemy.orm import Session

from . import outbox

HandlerFunction = Callable[[{{ Session }}, dict[str, Any]], {{ "Awaitable[None]" if is_async else "None" }}]


@dataclass(frozen=True)
class Handler:
    name: str
    function: HandlerFunction

    def record(self, session: {{ Session }}{{ " | Session" if is_async }}, **payload: Any) -> None:
        """A job for this handler, stored with ``session``'s write, or not at all."""
        outbox.record(session, self.name, payload)


def handler(name: str) -> Callable[[HandlerFunction], Handler]:
    """Declare a handler; list it in ``HANDLERS`` (``jobs/worker.py``) for the worker."""

    def declare(function: HandlerFunction) -> Handler:
        return Handler(name, function)

    return declare
