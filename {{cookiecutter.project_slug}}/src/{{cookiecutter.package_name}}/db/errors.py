"""What the database layer raises besides SQLAlchemy's own errors."""


class ConflictError(Exception):
    """A write that conflicts with stored data, such as a name already taken."""
