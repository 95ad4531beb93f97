"""Count each item's changes, for ETags and optimistic concurrency.

Revision ID: 0003
Revises: 0002
Create Date: 2026-01-03 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing rows start at version 1, as new ones do.
    op.add_column("items", sa.Column("version", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("items") as batch:
        batch.drop_column("version")
