"""Autodialer tasks and attempts, callback requests, purged recordings.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 05:00:00
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
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("recording_purged_at", sa.DateTime(timezone=True)))
    op.create_table(
        "dialer_tasks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=True),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("repeat", sa.Integer(), server_default="1", nullable=False),
        sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=True),
        sa.Column("priority", sa.Integer(), server_default="0", nullable=False),
        sa.Column("done", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("done_reason", sa.String(length=32), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("unanswered", sa.Integer(), server_default="0", nullable=False),
        sa.Column("failed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("attempt_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dialer_tasks")),
        sa.UniqueConstraint("external_id", name=op.f("uq_dialer_tasks_external_id")),
    )
    op.create_index(op.f("ix_dialer_tasks_number"), "dialer_tasks", ["number"])
    op.create_index("ix_dialer_tasks_due", "dialer_tasks", ["done", "priority", "enqueued_at"])
    op.create_table(
        "dialer_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=64), nullable=False),
        sa.Column("channel_id", sa.String(length=64), nullable=True),
        sa.Column("worker", sa.String(length=64), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ringing_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("cause", sa.Integer(), nullable=True),
        sa.Column("cause_text", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["dialer_tasks.id"],
            name=op.f("fk_dialer_attempts_task_id_dialer_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dialer_attempts")),
    )
    op.create_index(op.f("ix_dialer_attempts_task_id"), "dialer_attempts", ["task_id"])
    op.create_index(op.f("ix_dialer_attempts_number"), "dialer_attempts", ["number"])
    op.create_index(op.f("ix_dialer_attempts_started_at"), "dialer_attempts", ["started_at"])
    op.create_table(
        "callbacks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("caller", sa.String(length=64), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=16), server_default="ivr", nullable=False),
        sa.Column("call_id", sa.String(length=64), nullable=True),
        sa.Column("done", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("call_not_before", sa.DateTime(timezone=True), nullable=True),
        sa.Column("operator", sa.String(length=64), nullable=True),
        sa.Column("called_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("callback_call_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callbacks")),
    )
    op.create_index(op.f("ix_callbacks_caller"), "callbacks", ["caller"])
    op.create_index(op.f("ix_callbacks_requested_at"), "callbacks", ["requested_at"])
    op.create_index(op.f("ix_callbacks_operator"), "callbacks", ["operator"])


def downgrade() -> None:
    op.drop_table("callbacks")
    op.drop_table("dialer_attempts")
    op.drop_table("dialer_tasks")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("recording_purged_at")
