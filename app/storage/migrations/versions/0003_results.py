"""Results kept on the poll row by every vote: counts per option, voters, and their version.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("polls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("vote_counts", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("voters", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("results_version", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("polls", schema=None) as batch_op:
        batch_op.drop_column("results_version")
        batch_op.drop_column("voters")
        batch_op.drop_column("vote_counts")
