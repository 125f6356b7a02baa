"""Initial schema: device messages, snapshots, status transitions, devices, feedback, use cases, readiness.

Revision ID: 0001
Revises: none
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""

    op.create_table(
        "devices",
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("state_since", sa.DateTime(), nullable=True),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.Column("agent_version", sa.String(length=64), nullable=False),
        sa.Column("pipelines", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("site", "device_id"),
    )
    op.create_table(
        "feedback",
        sa.Column("event_message_id", sa.String(length=36), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False, comment="confirmed | false_alarm"),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("event_message_id"),
    )
    op.create_table(
        "messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=False, comment="Envelope message_id: the dedup key."),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("leaf", sa.String(length=200), nullable=False, comment="Topic below edge/v1/{site}/{device}/."),
        sa.Column("task", sa.String(length=32), nullable=True),
        sa.Column("pipeline", sa.String(length=64), nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("captured_at", sa.DateTime(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("replayed", sa.Boolean(), nullable=False),
        sa.Column("total_ms", sa.Float(), nullable=True, comment="Result: end-to-end inference milliseconds."),
        sa.Column(
            "flag",
            sa.Boolean(),
            nullable=True,
            comment="Result: defect failed, window anomalous or a shelf zone low/out.",
        ),
        sa.Column("event", sa.String(length=32), nullable=True, comment="Event: the event type."),
        sa.Column("payload", sa.Text(), nullable=False, comment="The validated JSON payload as received."),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id"),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_messages_device_kind_captured", ["site", "device_id", "kind", "captured_at"], unique=False
        )
        batch_op.create_index("ix_messages_kind_captured", ["kind", "captured_at"], unique=False)

    op.create_table(
        "readiness",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("scores", sa.Text(), nullable=False, comment="ReadinessScores as JSON."),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "snapshots",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("topic", sa.String(length=400), nullable=False),
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("task", sa.String(length=32), nullable=False),
        sa.Column("snapshot_id", sa.String(length=200), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("topic"),
    )
    op.create_table(
        "status_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column(
            "at", sa.DateTime(), nullable=False, comment="When the state began, as well as the service can tell."
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id"),
    )
    with op.batch_alter_table("status_events", schema=None) as batch_op:
        batch_op.create_index("ix_status_events_device_at", ["site", "device_id", "at"], unique=False)

    op.create_table(
        "use_cases",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("params", sa.Text(), nullable=False, comment="UseCaseParams as JSON."),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )


def downgrade() -> None:
    """Downgrade schema."""

    op.drop_table("use_cases")
    with op.batch_alter_table("status_events", schema=None) as batch_op:
        batch_op.drop_index("ix_status_events_device_at")

    op.drop_table("status_events")
    op.drop_table("snapshots")
    op.drop_table("readiness")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_kind_captured")
        batch_op.drop_index("ix_messages_device_kind_captured")

    op.drop_table("messages")
    op.drop_table("feedback")
    op.drop_table("devices")
