"""Database access: the engine, the declarative base and the transaction policy.

Nothing here imports the HTTP layer: background tasks and scripts use it as is.
"""
