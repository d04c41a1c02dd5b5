"""The platform's database schema: every part's migration folder and models, in one place."""

from __future__ import annotations

from pathlib import Path

from hero.data import OUTBOX_MIGRATIONS, OutboxModel, Schema
from hero.modules.chat import CHAT_MIGRATIONS, ChatModel
from hero.modules.notifications import NOTIFICATIONS_MIGRATIONS, NotificationsModel
from hero.modules.users import USERS_MIGRATIONS, UsersModel

BRANCHES: dict[str, Path] = {
    "outbox": OUTBOX_MIGRATIONS,
    "chat": CHAT_MIGRATIONS,
    "users": USERS_MIGRATIONS,
    "notifications": NOTIFICATIONS_MIGRATIONS,
}
"""Alembic branch label -> migration folder."""


def platform_schema() -> Schema:
    """The schema `hero serve` and `hero migrate` bring every database to."""
    return Schema(
        locations=tuple(BRANCHES.values()),
        metadata=(
            OutboxModel.metadata,
            ChatModel.metadata,
            UsersModel.metadata,
            NotificationsModel.metadata,
        ),
    )
