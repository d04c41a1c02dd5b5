"""The chat module: channels, DMs, membership, messages, threads, reactions, pins, read
state and search, with every change published through the outbox after its commit."""

from pathlib import Path

from hero.modules.chat.models import ChatModel
from hero.modules.chat.routes import chat_router
from hero.modules.chat.service import ChatService

CHAT_MIGRATIONS = Path(__file__).parent / "migrations"
"""The chat module's migration folder (Alembic branch `chat`)."""

__all__ = ["CHAT_MIGRATIONS", "ChatModel", "ChatService", "chat_router"]
