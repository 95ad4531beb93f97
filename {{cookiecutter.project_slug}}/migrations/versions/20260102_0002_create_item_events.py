"""Create the item_events table.

Revision ID: 0002
Revises: 0001
Create Date: 2026-01-02 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "item_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=20), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_item_events")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_item_events_item_id"), "item_events", ["item_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_item_events_item_id"), table_name="item_events")
    op.drop_table("item_events")
