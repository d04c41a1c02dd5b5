"""Data access: the SQLAlchemy engine and sessions, migrations, ids, and the outbox.

SQLite (`sqlite+aiosqlite:///hero.db`) is the embedded default; PostgreSQL
(`postgresql+asyncpg://...`) is the production choice and the one for several instances.
Each part of the application declares its tables on its own declarative base and keeps its
migrations in its own folder (an Alembic branch); the composition root lists them in a
`Schema` and `Database.migrate(schema)` applies them all.
"""

from pathlib import Path

from hero.data.columns import UtcDateTime, iso, utc_now
from hero.data.database import Database, DatabaseError, Schema
from hero.data.ids import new_id
from hero.data.outbox import Outbox, OutboxEvent, OutboxModel, UnitOfWork
from hero.data.unreachable import database_unreachable

OUTBOX_MIGRATIONS = Path(__file__).parent / "migrations"
"""The outbox's migration folder (Alembic branch `outbox`)."""

__all__ = [
    "OUTBOX_MIGRATIONS",
    "Database",
    "DatabaseError",
    "Outbox",
    "OutboxEvent",
    "OutboxModel",
    "Schema",
    "UnitOfWork",
    "UtcDateTime",
    "database_unreachable",
    "iso",
    "new_id",
    "utc_now",
]
