"""Durable background work: a job is recorded with the write that causes it, and done
at least once, with its effects once.

- ``models.py``: the outbox, one row per job, in the service's own database.
- ``outbox.py``: record, send, claim, fail, replay and purge jobs.
- ``handlers.py``: ``@handler(name)``; ``handler.record(session, **payload)``.
- ``worker.py``: dramatiq's worker on Redis, and the relay that feeds it.
- ``__main__.py``: ``python -m {{ cookiecutter.package_name }}.jobs worker|dead|replay``.
"""

from .handlers import Handler, handler

__all__ = ["Handler", "handler"]
