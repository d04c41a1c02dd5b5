"""Data access: the SQLAlchemy engine, the schema and its migrations.

SQLite (`sqlite+aiosqlite:///hero.db`) is the embedded default; PostgreSQL
(`postgresql+asyncpg://...`) is the production choice. Modules declare their tables on
`metadata`; `Database.migrate()` brings a database to the current schema version.
"""

from hero.data.database import SCHEMA_VERSION, Database, DatabaseError, metadata

__all__ = ["SCHEMA_VERSION", "Database", "DatabaseError", "metadata"]
