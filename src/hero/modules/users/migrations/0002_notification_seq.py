"""per-user notification sequence

Revision ID: 4e8a61c0d2f7
Revises: 89f5eafc6ad1
Create Date: 2026-12-04 01:05:00

`notifications.seq` numbers one user's notifications in commit order: each notification
takes the next number from its user's row in `notification_counters`, which stays locked
until the transaction ends. `Last-Event-ID` replays compare `seq`, not ids: a UUIDv7 id comes
from the clock of the instance that made it. Existing rows are numbered in id order. (It
lives in the users branch because that branch created the `notifications` table.)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "4e8a61c0d2f7"
down_revision = "89f5eafc6ad1"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notification_counters",
        sa.Column("tenant_id", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "user_id"),
    )
    op.add_column(
        "notifications",
        sa.Column("seq", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
    )
    # One pass with a window function (SQLite 3.33+ for UPDATE ... FROM).
    op.execute(
        "UPDATE notifications SET seq = numbered.n FROM (SELECT id, row_number() OVER "
        "(PARTITION BY tenant_id, user_id ORDER BY id) AS n FROM notifications) AS numbered "
        "WHERE notifications.id = numbered.id"
    )
    op.execute(
        "INSERT INTO notification_counters (tenant_id, user_id, last_seq) "
        "SELECT tenant_id, user_id, MAX(seq) FROM notifications GROUP BY tenant_id, user_id"
    )
    op.create_index(
        "ix_notifications_user_seq", "notifications", ["tenant_id", "user_id", "seq"], unique=True
    )


def downgrade() -> None:
    op.drop_index("ix_notifications_user_seq", table_name="notifications")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_column("seq")
    op.drop_table("notification_counters")
