"""Database access: the engine, the declarative base and the per-request session."""
