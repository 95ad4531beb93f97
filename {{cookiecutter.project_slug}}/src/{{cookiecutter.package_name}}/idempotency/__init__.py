"""Retrying a write safely: the ``Idempotency-Key`` request header.

A client that got no answer to a write (a timeout, a dropped connection, a
503 after a commit whose outcome is unknown) cannot tell whether it was
stored. Sending the write again with the same key is safe: the first answer
that was stored is answered again, and the write is not made twice.

- ``models.py``: the stored answers, one per key.
- ``repository.py``: claim a key, store its answer, purge expired ones.
- ``database.py``: the keyed write's unit of work, which its request joins.
- ``middleware.py``: the HTTP side, for every ``POST``, ``PUT``, ``PATCH``
  and ``DELETE`` that carries the header.
- ``tasks.py``: expired keys purged while the service runs.
"""

from .database import KeyedDatabase
from .middleware import IdempotencyMiddleware, document
from .tasks import purge_expired_keys

__all__ = ["IdempotencyMiddleware", "KeyedDatabase", "document", "purge_expired_keys"]
