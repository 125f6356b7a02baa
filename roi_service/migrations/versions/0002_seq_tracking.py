"""End-to-end acknowledgement by seq: per-device high-water marks, open gaps, reported losses, replica leases.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index("ix_messages_device_seq", ["site", "device_id", "seq"], unique=False)
    op.create_table(
        "device_seq",
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column(
            "high_water",
            sa.BigInteger(),
            nullable=False,
            comment="Every tracked seq up to here is stored or a known loss.",
        ),
        sa.Column("max_seen", sa.BigInteger(), nullable=False, comment="Highest tracked seq scanned so far."),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("site", "device_id"),
    )
    op.create_table(
        "seq_gaps",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("opened_at", sa.DateTime(), nullable=False, comment="When the scan first saw this gap."),
        sa.Column("last_asked_at", sa.DateTime(), nullable=True, comment="Last cmd/resend that named it."),
        sa.Column("asks", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("seq_gaps", schema=None) as batch_op:
        batch_op.create_index("ix_seq_gaps_device_first", ["site", "device_id", "first_seq"], unique=True)
    op.create_table(
        "seq_losses",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column(
            "reported_at", sa.DateTime(), nullable=False, comment="When the device said it no longer holds them."
        ),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("seq_losses", schema=None) as batch_op:
        batch_op.create_index("ix_seq_losses_device_first", ["site", "device_id", "first_seq"], unique=True)
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=64), nullable=False, comment="What the lease is for, e.g. resend."),
        sa.Column("holder", sa.String(length=120), nullable=False, comment="The replica that holds it."),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_table("leases")
    with op.batch_alter_table("seq_losses", schema=None) as batch_op:
        batch_op.drop_index("ix_seq_losses_device_first")
    op.drop_table("seq_losses")
    with op.batch_alter_table("seq_gaps", schema=None) as batch_op:
        batch_op.drop_index("ix_seq_gaps_device_first")
    op.drop_table("seq_gaps")
    op.drop_table("device_seq")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_device_seq")
