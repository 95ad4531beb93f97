{% set previous = "0004" if cookiecutter.idempotency_keys else ("0005" if cookiecutter.database == "postgresql" else "0003") %}
"""Create the jobs table: the outbox of durable background work (jobs/).

It comes after every other migration, so a project that takes the wing later
gets it from `alembic upgrade head`.

Revision ID: 0006
Revises: {{ previous }}
Create Date: 2026-01-06 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "{{ previous }}"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OUTSTANDING = sa.text("handled_at IS NULL AND dead_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", {{ "sa.BigInteger(), sa.Identity()" if cookiecutter.database == "postgresql" else "sa.Integer()" }}, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "due_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dead_at", sa.DateTime(timezone=True), nullable=True),
{% if cookiecutter.tracing %}
        sa.Column("traceparent", sa.String(length=55), nullable=True),
{% endif %}
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
{% if cookiecutter.database == "sqlite" %}
        sqlite_autoincrement=True,
{% endif %}
    )
    op.create_index(
        "ix_jobs_outstanding",
        "jobs",
        ["due_at"],
        postgresql_where=OUTSTANDING,
        sqlite_where=OUTSTANDING,
    )
    op.create_index(op.f("ix_jobs_handled_at"), "jobs", ["handled_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_jobs_handled_at"), table_name="jobs")
    op.drop_index("ix_jobs_outstanding", table_name="jobs")
    op.drop_table("jobs")
