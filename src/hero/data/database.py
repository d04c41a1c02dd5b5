"""The Database: one async engine, schema creation with a version record, a health check."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from sqlalchemy import Column, Integer, MetaData, String, Table, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

metadata = MetaData()
"""Every module's tables live here, so one migration step creates them all."""

SCHEMA_VERSION = 1
"""Bumped by every migration; recorded in `hero_schema`."""

schema_table = Table(
    "hero_schema",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
    Column("applied_by", String(64), nullable=False),
)


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


class Database:
    """Owns the engine. The constructor does no I/O; `migrate()` and `check()` do.

    SQLite files are created on first connect (in the working directory for a relative
    path); SQLite gets WAL journaling and a busy timeout so concurrent requests do not fail
    with "database is locked".
    """

    def __init__(self, url: str) -> None:
        try:
            parsed = make_url(url)
        except (ArgumentError, ValueError) as exc:
            # ValueError: a malformed part, such as a port that is not a number.
            detail = _without_password(str(exc), url)
            raise DatabaseError(f"not a SQLAlchemy URL: {detail}") from None
        self.url = parsed
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        connect_args: dict[str, object] = {"timeout": 15} if self.is_sqlite else {}
        try:
            self.engine: AsyncEngine = create_async_engine(
                parsed, connect_args=connect_args, pool_pre_ping=not self.is_sqlite
            )
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            # ValueError: a query option of the wrong form, such as ?timeout=abc.
            detail = _without_password(str(exc), url)
            raise DatabaseError(f"cannot use {parsed.drivername!r}: {detail}") from None

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as connection:
            if self.is_sqlite:
                await connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            yield connection

    async def migrate(self) -> int:
        """Create missing tables and record the schema version; returns the version.

        Refuses a database whose recorded version is newer than this code's.
        """
        try:
            if self.is_sqlite:
                async with self.engine.connect() as raw:
                    await raw.exec_driver_sql("PRAGMA journal_mode=WAL")
            async with self.connect() as connection:
                await connection.run_sync(metadata.create_all)
                current = (
                    await connection.execute(select(schema_table.c.version).limit(1))
                ).scalar_one_or_none()
                if current is None:
                    await connection.execute(
                        schema_table.insert().values(
                            id=1, version=SCHEMA_VERSION, applied_by="hero"
                        )
                    )
                    return SCHEMA_VERSION
                if current > SCHEMA_VERSION:
                    raise DatabaseError(
                        f"the database schema is version {current}, newer than this hero "
                        f"({SCHEMA_VERSION})"
                    )
                if current < SCHEMA_VERSION:
                    await connection.execute(schema_table.update().values(version=SCHEMA_VERSION))
                return SCHEMA_VERSION
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
        await self.engine.dispose()
