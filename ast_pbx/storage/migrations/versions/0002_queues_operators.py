"""Queue statistics and operators.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "queue_calls",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("call_id", sa.String(length=64), nullable=False),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("caller", sa.String(length=64), nullable=True),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("member", sa.String(length=64), nullable=True),
        sa.Column("operator", sa.String(length=64), nullable=True),
        sa.Column("left_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("talk_ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue_calls")),
    )
    op.create_index(op.f("ix_queue_calls_call_id"), "queue_calls", ["call_id"])
    op.create_index(op.f("ix_queue_calls_queue"), "queue_calls", ["queue"])
    op.create_index(op.f("ix_queue_calls_caller"), "queue_calls", ["caller"])
    op.create_index(op.f("ix_queue_calls_entered_at"), "queue_calls", ["entered_at"])
    op.create_index(op.f("ix_queue_calls_member"), "queue_calls", ["member"])
    op.create_table(
        "operators",
        sa.Column("login", sa.String(length=64), nullable=False),
        sa.Column("phone", sa.String(length=64), nullable=True),
        sa.Column("accepting", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("bind_code", sa.String(length=16), nullable=True),
        sa.Column("code_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("bound_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("login", name=op.f("pk_operators")),
        sa.UniqueConstraint("phone", name=op.f("uq_operators_phone")),
        sa.UniqueConstraint("bind_code", name=op.f("uq_operators_bind_code")),
    )


def downgrade() -> None:
    op.drop_table("operators")
    op.drop_index(op.f("ix_queue_calls_member"), table_name="queue_calls")
    op.drop_index(op.f("ix_queue_calls_entered_at"), table_name="queue_calls")
    op.drop_index(op.f("ix_queue_calls_caller"), table_name="queue_calls")
    op.drop_index(op.f("ix_queue_calls_queue"), table_name="queue_calls")
    op.drop_index(op.f("ix_queue_calls_call_id"), table_name="queue_calls")
    op.drop_table("queue_calls")
