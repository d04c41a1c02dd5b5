"""outbox events

Revision ID: 2e2bf1b4ab52
Revises:
Create Date: 2026-12-02 11:29:28.092442
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "2e2bf1b4ab52"
down_revision = None
branch_labels = ("outbox",)
depends_on = None


def upgrade() -> None:

    op.create_table(
        "outbox_events",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("tenant_id", sa.String(length=128), nullable=False),
        sa.Column("stream", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_events_sent_at", ["sent_at"], unique=False)
        batch_op.create_index("ix_outbox_events_stream_seq", ["stream", "seq"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_events_stream_seq")
        batch_op.drop_index("ix_outbox_events_sent_at")

    op.drop_table("outbox_events")
