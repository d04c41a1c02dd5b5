"""The platform's database schema: every part's migration folder and models, in one place."""

from __future__ import annotations

from pathlib import Path

from hero.data import OUTBOX_MIGRATIONS, OutboxModel, Schema
from hero.modules.chat import CHAT_MIGRATIONS, ChatModel

BRANCHES: dict[str, Path] = {
    "outbox": OUTBOX_MIGRATIONS,
    "chat": CHAT_MIGRATIONS,
}
"""Alembic branch label -> migration folder."""


def platform_schema() -> Schema:
    """The schema `hero serve` and `hero migrate` bring every database to."""
    return Schema(
        locations=tuple(BRANCHES.values()),
        metadata=(OutboxModel.metadata, ChatModel.metadata),
    )
