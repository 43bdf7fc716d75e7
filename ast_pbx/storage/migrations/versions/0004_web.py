"""The operator page: interaction history, chat, sign-in failures.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 05:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "interactions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("phone", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("direction", sa.String(length=8), server_default="in", nullable=False),
        sa.Column("call_id", sa.String(length=64), nullable=True),
        sa.Column("caller_name", sa.String(length=256), nullable=True),
        sa.Column("question_group", sa.String(length=128), nullable=True),
        sa.Column("question", sa.Text(), nullable=True),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("operator", sa.String(length=64), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interactions")),
    )
    for column in ("phone", "at", "call_id", "operator"):
        op.create_index(op.f(f"ix_interactions_{column}"), "interactions", [column])
    op.create_table(
        "chat_messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sender", sa.String(length=64), nullable=False),
        sa.Column("recipient", sa.String(length=64), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_messages")),
    )
    for column in ("sender", "recipient", "sent_at"):
        op.create_index(op.f(f"ix_chat_messages_{column}"), "chat_messages", [column])
    op.create_table(
        "chat_reads",
        sa.Column("login", sa.String(length=64), nullable=False),
        sa.Column("last_broadcast_id", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("login", name=op.f("pk_chat_reads")),
    )
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("login", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failures")),
    )
    op.create_index(op.f("ix_login_failures_login"), "login_failures", ["login"])
    op.create_index(op.f("ix_login_failures_at"), "login_failures", ["at"])


def downgrade() -> None:
    op.drop_table("login_failures")
    op.drop_table("chat_reads")
    op.drop_table("chat_messages")
    op.drop_table("interactions")
