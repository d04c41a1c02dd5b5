"""Pooled PostgreSQL connections are pinged at checkout once they sat idle: a connection the
server dropped while it was in the pool is replaced, not handed to a request."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from hero.data import Database

pytest_plugins = ("tests.support.postgres",)

# waits (up to 5 s) until each terminated backend has exited
TERMINATE_OTHERS = text(
    "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity"
    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


async def _backend_pid(database: Database) -> int:
    async with database.engine.connect() as connection:
        return int(await connection.scalar(text("SELECT pg_backend_pid()")) or 0)


async def test_a_connection_dropped_while_idle_is_replaced_at_checkout(
    postgres_url: str,
) -> None:
    database = Database(postgres_url, ping_after_idle=0.0)
    killer = Database(postgres_url)
    try:
        first = await _backend_pid(database)  # now idle in the pool
        async with killer.engine.connect() as connection:
            assert await connection.scalar(TERMINATE_OTHERS) == 1
        # the pooled connection is dead; the idle ping finds out and a new one is used
        second = await _backend_pid(database)
        assert second not in (0, first)
    finally:
        await database.aclose()
        await killer.aclose()


async def test_a_connection_in_use_a_moment_ago_is_not_pinged(postgres_url: str) -> None:
    """Without the ping, the dead pooled connection fails its first statement (which also
    makes the pool replace its connections); the next checkout then works."""
    database = Database(postgres_url, ping_after_idle=3600.0)
    killer = Database(postgres_url)
    try:
        first = await _backend_pid(database)
        async with killer.engine.connect() as connection:
            assert await connection.scalar(TERMINATE_OTHERS) == 1
        with pytest.raises(DBAPIError):
            await _backend_pid(database)
        assert await _backend_pid(database) != first
    finally:
        await database.aclose()
        await killer.aclose()
