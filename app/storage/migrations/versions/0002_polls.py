"""Polls, their options, and ballots (one per user per poll) with their choices.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# SQLite autoincrements only an INTEGER PRIMARY KEY.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "polls",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("guild_id", sa.String(length=20), nullable=False),
        sa.Column("channel_id", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("opens_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closes_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("anonymous", sa.Boolean(), nullable=False),
        sa.Column("max_choices", sa.Integer(), nullable=False),
        sa.Column("results_visibility", sa.String(length=16), nullable=False),
        sa.Column("ping_role_id", sa.String(length=20), nullable=True),
        sa.Column("ping_on_open", sa.Boolean(), nullable=False),
        sa.Column("ping_on_close", sa.Boolean(), nullable=False),
        sa.Column("allowed_role_ids", sa.JSON(), nullable=False),
        sa.Column("message_id", sa.String(length=20), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("problem_code", sa.String(length=40), nullable=True),
        sa.Column("problem_message", sa.Text(), nullable=True),
        sa.Column("problem_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pending", sa.String(length=16), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("posts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_polls")),
    )
    with op.batch_alter_table("polls", schema=None) as batch_op:
        batch_op.create_index("ix_polls_due_at", ["due_at"], unique=False)
        batch_op.create_index("ix_polls_guild_id", ["guild_id", "id"], unique=False)

    op.create_table(
        "ballots",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("poll_id", ID, nullable=False),
        sa.Column("user_id", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["poll_id"], ["polls.id"], name=op.f("fk_ballots_poll_id_polls"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ballots")),
        sa.UniqueConstraint("poll_id", "user_id", name="uq_ballots_poll_id_user_id"),
    )
    op.create_table(
        "poll_options",
        sa.Column("poll_id", ID, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("text", sa.String(length=80), nullable=False),
        sa.Column("emoji", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(
            ["poll_id"], ["polls.id"], name=op.f("fk_poll_options_poll_id_polls"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("poll_id", "position", name=op.f("pk_poll_options")),
    )
    op.create_table(
        "ballot_choices",
        sa.Column("ballot_id", ID, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("poll_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["ballot_id"],
            ["ballots.id"],
            name=op.f("fk_ballot_choices_ballot_id_ballots"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["poll_id"], ["polls.id"], name=op.f("fk_ballot_choices_poll_id_polls"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("ballot_id", "position", name=op.f("pk_ballot_choices")),
    )
    with op.batch_alter_table("ballot_choices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ballot_choices_poll_id"), ["poll_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("ballot_choices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ballot_choices_poll_id"))

    op.drop_table("ballot_choices")
    op.drop_table("poll_options")
    op.drop_table("ballots")
    with op.batch_alter_table("polls", schema=None) as batch_op:
        batch_op.drop_index("ix_polls_guild_id")
        batch_op.drop_index("ix_polls_due_at")

    op.drop_table("polls")
