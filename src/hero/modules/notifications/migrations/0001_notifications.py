"""notifications

Revision ID: bf2ba976e8b1
Revises:
Create Date: 2026-12-02 12:22:25.017778
"""

from __future__ import annotations

revision = "bf2ba976e8b1"
down_revision = None
branch_labels = ("notifications",)
depends_on = None


def upgrade() -> None:

    pass


def downgrade() -> None:

    pass
