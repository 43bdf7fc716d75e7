"""The call log.

Revision ID: 0001
Revises:
Create Date: 2026-11-26 02:15:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("channel_id", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("caller", sa.String(length=64), nullable=True),
        sa.Column("called", sa.String(length=64), nullable=False),
        sa.Column("path", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=128), nullable=True),
        sa.Column("trunk", sa.String(length=64), nullable=True),
        sa.Column("external", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("config_version", sa.String(length=64), nullable=True),
        sa.Column("marked", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("recording", sa.String(length=512), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calls")),
        sa.UniqueConstraint("channel_id", name=op.f("uq_calls_channel_id")),
    )
    op.create_index(op.f("ix_calls_started_at"), "calls", ["started_at"])
    op.create_index(op.f("ix_calls_caller"), "calls", ["caller"])
    op.create_index(op.f("ix_calls_called"), "calls", ["called"])


def downgrade() -> None:
    op.drop_index(op.f("ix_calls_called"), table_name="calls")
    op.drop_index(op.f("ix_calls_caller"), table_name="calls")
    op.drop_index(op.f("ix_calls_started_at"), table_name="calls")
    op.drop_table("calls")
