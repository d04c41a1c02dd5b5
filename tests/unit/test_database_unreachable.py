"""`database_unreachable`: which real database errors mean "cannot reach it now" (a 503)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import create_async_engine

from hero.data import database_unreachable


async def test_a_postgresql_socket_that_is_not_there_is_unreachable(tmp_path: Path) -> None:
    engine = create_async_engine(f"postgresql+asyncpg://hero@/hero?host={tmp_path}")
    try:
        with pytest.raises(OSError) as caught:
            async with engine.connect():
                pass
    finally:
        await engine.dispose()
    assert database_unreachable(caught.value)


async def test_a_pool_with_no_free_connection_is_unreachable(tmp_path: Path) -> None:
    engine = create_async_engine(
        f"sqlite+aiosqlite:///{tmp_path / 'one.db'}", pool_size=1, max_overflow=0, pool_timeout=0.05
    )
    try:
        async with engine.connect():
            with pytest.raises(PoolTimeoutError) as caught:
                async with engine.connect():
                    pass
    finally:
        await engine.dispose()
    assert database_unreachable(caught.value)


async def test_a_constraint_violation_is_a_fault_not_an_outage(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'rows.db'}")
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
            await connection.execute(text("INSERT INTO t VALUES (1)"))
            with pytest.raises(IntegrityError) as caught:
                await connection.execute(text("INSERT INTO t VALUES (1)"))
    finally:
        await engine.dispose()
    assert not database_unreachable(caught.value)


def test_an_os_error_outside_the_database_driver_is_not_an_outage(tmp_path: Path) -> None:
    with pytest.raises(OSError) as caught:
        (tmp_path / "missing.txt").read_text()
    assert not database_unreachable(caught.value)
