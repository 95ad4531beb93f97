"""Retrying a write safely: the ``Idempotency-Key`` request header.

A client that got no answer to a write (a timeout, a dropped connection, a
503 after a commit whose outcome is unknown) cannot tell whether it was
stored. Sending the write again with the same key is safe: the first answer
that was stored is answered again, and the write is not made twice.

- ``models.py``: the stored answers, one per key.
- ``repository.py``: claim a key, store its answer, purge expired ones.
- ``middleware.py``: the HTTP side, for every ``POST``, ``PUT``, ``PATCH``
  and ``DELETE`` that carries the header.
"""
