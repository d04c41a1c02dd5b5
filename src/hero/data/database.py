"""The Database: one async engine and session factory, Alembic migrations, a health check."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Executable, MetaData, event
from sqlalchemy import exc as exc_module
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from hero.data.sqlite_reads import Busy, SqliteReads


class DatabaseError(Exception):
    """The database is unreachable, misconfigured, or newer than this code.

    `kind` names what failed without details (the underlying exception's type name, else
    ``DatabaseError``): safe to show to anonymous callers, unlike the message.
    """

    def __init__(self, message: str, *, kind: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind or type(self).__name__


def _without_password(text: str, url: str) -> str:
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    return text.replace(password, "***") if password else text


SQLITE_BUSY_TIMEOUT = 15.0
"""Seconds a SQLite statement waits for another connection's write lock."""

PING_AFTER_IDLE = 1.0
"""Seconds a pooled connection may sit unused before it is pinged at checkout."""


class Database:
    """Owns the engine and the session factory. The constructor does no I/O; `migrate()`,
    `check()` and sessions do.

    SQLite files are created on first connect (in the working directory for a relative
    path); every SQLite connection gets WAL journaling, foreign keys and a busy timeout, so
    concurrent requests wait for each other instead of failing with "database is locked".
    """

    def __init__(self, url: str, *, ping_after_idle: float = PING_AFTER_IDLE) -> None:
        try:
            parsed = make_url(url)
        except (ArgumentError, ValueError) as exc:
            # ValueError: a malformed part, such as a port that is not a number.
            detail = _without_password(str(exc), url)
            raise DatabaseError(f"not a SQLAlchemy URL: {detail}") from None
        self.url = parsed
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self.is_postgresql = parsed.get_backend_name() == "postgresql"
        connect_args: dict[str, object] = {"timeout": SQLITE_BUSY_TIMEOUT} if self.is_sqlite else {}
        try:
            self.engine: AsyncEngine = create_async_engine(parsed, connect_args=connect_args)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            # ValueError: a query option of the wrong form, such as ?timeout=abc.
            detail = _without_password(str(exc), url)
            raise DatabaseError(f"cannot use {parsed.drivername!r}: {detail}") from None
        self._reads: SqliteReads | None = None
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _configure_sqlite)
            if SqliteReads.possible(parsed):
                self._reads = SqliteReads(parsed)
        else:
            _ping_when_idle(self.engine, ping_after_idle)
        self.sessions: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine, expire_on_commit=False
        )

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction, committed on a normal exit."""
        async with self.engine.begin() as connection:
            yield connection

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads: no ORM session and no unit of work; what it began is
        rolled back at the end (nothing was written)."""
        async with self.engine.connect() as connection:
            yield connection

    async def lookup(
        self, statement: Executable, parameters: Mapping[str, Any]
    ) -> Sequence[Sequence[Any]]:
        """The rows of one short read (the hub's lookups). On a SQLite file it runs on the
        spot, on a read-only connection that never waits for a lock
        (`hero.data.sqlite_reads`); elsewhere, or when that connection would have to
        wait, on a connection of `read()`."""
        if self._reads is not None:
            try:
                return self._reads.rows(statement, parameters)
            except Busy:
                pass
        async with self.read() as connection:
            return (await connection.execute(statement, parameters)).all()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction: committed on a normal exit, rolled back on an error."""
        async with self.sessions() as session, session.begin():
            yield session

    async def migrate(self, schema: Schema) -> tuple[str, ...]:
        """Apply every migration of `schema`; returns the revisions now current (sorted).

        Refuses a database at a revision this code does not know (a newer hero migrated it).
        """
        try:
            async with self.engine.begin() as connection:
                return await connection.run_sync(_upgrade, schema)
        except CommandError as exc:
            raise DatabaseError(
                f"the database schema is at a revision this hero does not know ({exc}); "
                "it was migrated by a newer version"
            ) from None
        except SQLAlchemyError as exc:
            raise DatabaseError(f"{type(exc).__name__}: {exc}", kind=type(exc).__name__) from None

    async def check(self, timeout: float = 2.0) -> None:
        """Raise DatabaseError unless a trivial query answers within `timeout` seconds."""
        try:
            async with asyncio.timeout(timeout), self.engine.connect() as connection:
                await connection.exec_driver_sql("SELECT 1")
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            raise DatabaseError(f"{type(exc).__name__}: {exc}", kind=type(exc).__name__) from None

    async def aclose(self) -> None:
        if self._reads is not None:
            self._reads.close()
        await self.engine.dispose()


def _ping_when_idle(engine: AsyncEngine, idle: float) -> None:
    """SQLAlchemy's `pool_pre_ping`, but only for a connection that sat in the pool for more
    than `idle` seconds: its ping costs three round trips on asyncpg (BEGIN, a query,
    ROLLBACK), once per transaction, while a connection returned a moment ago is alive. A
    failed ping invalidates the pool (every older connection is replaced), as pre-ping
    does; a connection that died in the last `idle` seconds fails its first statement,
    which also invalidates the pool."""
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    def checkin(dbapi_connection: Any, record: Any) -> None:
        record.info["hero_idle_since"] = time.monotonic()

    def checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.get("hero_idle_since")
        if since is None or time.monotonic() - since <= idle:
            return  # a new connection, or one in use a moment ago
        try:
            alive = dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            if not dialect.is_disconnect(exc, dbapi_connection, None):
                raise
            alive = False
        if not alive:
            record.info.pop("hero_idle_since", None)
            raise exc_module.InvalidatePoolError("the pooled connection did not answer")

    event.listen(pool, "checkin", checkin)
    event.listen(pool, "checkout", checkout)


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


HAND_MADE_PREFIXES = ("chat_messages_fts", "ix_chat_messages_search")
"""Names of objects that migrations create by hand, outside any model (full-text search)."""


def compared_with_models(name: str | None, kind: str, parent: Any) -> bool:
    """Alembic `include_name` filter: hand-made objects are not compared with the models."""
    return not (name or "").startswith(HAND_MADE_PREFIXES)


ENVIRONMENT = Path(__file__).parent / "alembic_env"
"""hero's Alembic environment (env.py and the revision template)."""


@dataclass(frozen=True)
class Schema:
    """What a database must hold: the migration folders of every part of the application
    (each its own Alembic branch) and the models they must produce."""

    locations: tuple[Path, ...]
    metadata: tuple[MetaData, ...] = ()

    def alembic_config(self, connection: Connection | None = None) -> Config:
        """An Alembic configuration over these folders, run on `connection` when given."""
        config = Config()
        config.set_main_option("script_location", str(ENVIRONMENT))
        config.set_main_option(
            "version_locations", " ".join(str(location) for location in self.locations)
        )
        config.set_main_option("path_separator", "space")
        config.attributes["target_metadata"] = list(self.metadata) or None
        if connection is not None:
            config.attributes["connection"] = connection
        return config

    def heads(self) -> tuple[str, ...]:
        return tuple(sorted(ScriptDirectory.from_config(self.alembic_config()).get_heads()))


def _upgrade(connection: Connection, schema: Schema) -> tuple[str, ...]:
    config = schema.alembic_config(connection)
    command.upgrade(config, "heads")
    return tuple(sorted(MigrationContext.configure(connection).get_current_heads()))
