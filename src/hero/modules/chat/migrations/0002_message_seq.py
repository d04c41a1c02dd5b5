"""per-channel message sequence

Revision ID: 7c1d2e0a9b31
Revises: 2139666da9c9
Create Date: 2026-12-04 01:00:00

`chat_messages.seq` numbers a channel's messages (replies included) in commit order: each
post takes the next number while it holds the channel's row (PostgreSQL) or the write lock
(SQLite). History cursors (`after=`, `before=`) and unread counts compare `seq`, not ids: a
UUIDv7 id comes from the clock of the instance that made it, so two instances can commit in
one order and mint ids in the other. Existing rows are numbered in id order.

The column is added in place (ALTER TABLE ADD COLUMN with a default), never by a batch
table copy: on SQLite that would renumber the rowids the FTS5 index refers to.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "7c1d2e0a9b31"
down_revision = "2139666da9c9"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "chat_messages",
        sa.Column("seq", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
    )
    # One pass with a window function (SQLite 3.33+ for UPDATE ... FROM), not a count of
    # the earlier rows per row, which grows with the square of a channel's messages.
    op.execute(
        "UPDATE chat_messages SET seq = numbered.n FROM (SELECT id, row_number() OVER "
        "(PARTITION BY channel_id ORDER BY id) AS n FROM chat_messages) AS numbered "
        "WHERE chat_messages.id = numbered.id"
    )
    op.create_index(
        "ix_chat_messages_channel_seq", "chat_messages", ["channel_id", "seq"], unique=True
    )


def downgrade() -> None:
    op.drop_index("ix_chat_messages_channel_seq", table_name="chat_messages")
    with op.batch_alter_table("chat_messages", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("seq")
