"""The database layer: engine, base, unit of work. It imports nothing of the HTTP layer."""
