"""Database.lookup: the hub's short reads. On a SQLite file they run on the spot on a
read-only connection that never waits for a lock; when SQLite answers busy they go
through the async engine instead. Real SQLite files throughout."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import Column, MetaData, String, Table, Uuid, bindparam, insert, select
from sqlalchemy.exc import OperationalError

from hero.data import Database
from hero.data.sqlite_reads import Busy, SqliteReads

_META = MetaData()
_PEOPLE = Table("people", _META, Column("id", Uuid, primary_key=True), Column("name", String))
BY_IDS = select(_PEOPLE.c.id, _PEOPLE.c.name).where(
    _PEOPLE.c.id.in_(bindparam("ids", expanding=True))
)


async def _database(url: str) -> Database:
    db = Database(url)
    async with db.connect() as connection:
        await connection.run_sync(_META.create_all)
    return db


@pytest.fixture
async def on_file(tmp_path: Path) -> AsyncIterator[tuple[Database, Path]]:
    path = tmp_path / "lookup.db"
    db = await _database(f"sqlite+aiosqlite:///{path}")
    try:
        yield db, path
    finally:
        await db.aclose()


async def test_lookup_converts_types_and_sees_each_commit(on_file: tuple[Database, Path]) -> None:
    db, _ = on_file
    ada, bob = uuid.uuid4(), uuid.uuid4()
    async with db.connect() as connection:
        await connection.execute(insert(_PEOPLE), [{"id": ada, "name": "ada"}])
    assert list(await db.lookup(BY_IDS, {"ids": [ada, bob]})) == [(ada, "ada")]
    async with db.connect() as connection:
        await connection.execute(insert(_PEOPLE), [{"id": bob, "name": "bob"}])
    rows = await db.lookup(BY_IDS, {"ids": [ada, bob]})
    assert sorted(rows, key=lambda row: row[1]) == [(ada, "ada"), (bob, "bob")]


async def test_the_read_connection_cannot_write(tmp_path: Path) -> None:
    db = await _database(f"sqlite+aiosqlite:///{tmp_path / 'ro.db'}")
    reads = SqliteReads(db.url)
    try:
        with pytest.raises(OperationalError, match="readonly"):
            reads.rows(insert(_PEOPLE), {"id": uuid.uuid4(), "name": "x"})
    finally:
        reads.close()
        await db.aclose()


async def test_a_locked_file_is_read_through_the_async_engine(
    on_file: tuple[Database, Path],
) -> None:
    db, path = on_file
    ada = uuid.uuid4()
    async with db.connect() as connection:
        await connection.execute(insert(_PEOPLE), [{"id": ada, "name": "ada"}])
    await db.engine.dispose()  # no pooled connection keeps the file open
    # Another process's connection in exclusive locking mode shuts every reader out.
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        reads = SqliteReads(db.url)
        try:
            with pytest.raises(Busy):
                reads.rows(BY_IDS, {"ids": [ada]})
        finally:
            reads.close()
        # The lookup does not fail: it goes to the async engine, whose connection waits
        # (its busy timeout) until the lock goes.
        waiting = asyncio.ensure_future(db.lookup(BY_IDS, {"ids": [ada]}))
        await asyncio.sleep(0)
    finally:
        holder.execute("ROLLBACK")
        holder.execute("PRAGMA locking_mode=NORMAL")
        holder.execute("SELECT 1 FROM people").fetchall()  # gives the exclusive lock up
        holder.close()
    assert list(await asyncio.wait_for(waiting, 10)) == [(ada, "ada")]


async def test_an_in_memory_database_is_read_through_the_async_engine() -> None:
    assert not SqliteReads.possible(Database("sqlite+aiosqlite://").url)
    assert not SqliteReads.possible(Database("sqlite+aiosqlite:///:memory:").url)
    db = await _database("sqlite+aiosqlite://")
    try:
        ada = uuid.uuid4()
        async with db.connect() as connection:
            await connection.execute(insert(_PEOPLE), [{"id": ada, "name": "ada"}])
        assert list(await db.lookup(BY_IDS, {"ids": [ada]})) == [(ada, "ada")]
    finally:
        await db.aclose()
