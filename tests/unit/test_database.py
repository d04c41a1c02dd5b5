"""hero.data.Database on a real SQLite file: migrations, checks, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from hero.data import Database, DatabaseError
from hero.platform.schema import platform_schema


async def test_migrate_creates_the_file_and_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "hero.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    schema = platform_schema()
    try:
        assert await db.migrate(schema) == schema.heads()
        assert await db.migrate(schema) == schema.heads()
        await db.check()
        async with db.connect() as connection:
            mode = (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar_one()
        assert mode == "wal"
    finally:
        await db.aclose()
    assert path.is_file()


async def test_a_revision_this_hero_does_not_know_is_refused(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'hero.db'}")
    try:
        await db.migrate(platform_schema())
        async with db.connect() as connection:
            # one branch's head becomes a revision no folder holds
            await connection.execute(
                text(
                    "UPDATE alembic_version SET version_num = 'f00d' "
                    "WHERE version_num = (SELECT min(version_num) FROM alembic_version)"
                )
            )
        with pytest.raises(DatabaseError, match="newer version"):
            await db.migrate(platform_schema())
    finally:
        await db.aclose()


async def test_unreachable_database_fails_the_check(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'missing-dir' / 'hero.db'}")
    try:
        with pytest.raises(DatabaseError):
            await db.check()
    finally:
        await db.aclose()


def test_unknown_driver_is_a_clear_error() -> None:
    with pytest.raises(DatabaseError, match="nosuchdriver"):
        Database("nosuchdriver://x/y")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://u:s3cr3t-pw@h:notaport/db",
        "sqlite+aiosqlite://u:s3cr3t-pw@h:1/hero.db",
        "postgresql+asyncpg//u:s3cr3t-pw@h/db",
    ],
)
def test_a_malformed_url_is_a_database_error_without_the_password(url: str) -> None:
    with pytest.raises(DatabaseError) as raised:
        Database(url)
    assert "s3cr3t-pw" not in str(raised.value)


async def test_check_failures_name_their_kind(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'missing-dir' / 'hero.db'}")
    try:
        with pytest.raises(DatabaseError) as raised:
            await db.check()
    finally:
        await db.aclose()
    assert raised.value.kind == "OperationalError"
    assert DatabaseError("plain").kind == "DatabaseError"


def test_a_malformed_query_option_is_a_database_error() -> None:
    with pytest.raises(DatabaseError, match="could not convert"):
        Database("sqlite+aiosqlite:///hero.db?timeout=abc")
