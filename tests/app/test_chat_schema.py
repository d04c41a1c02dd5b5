"""The migrations produce exactly the schema the models declare."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from hero.data import Database
from hero.data.database import compared_with_models
from hero.platform.schema import platform_schema


def _sqlite(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'schema.db'}"


@pytest.mark.parametrize("url_for", [_sqlite], ids=["sqlite"])
async def test_migrations_match_models(tmp_path: Path, url_for: object) -> None:
    assert callable(url_for)
    database = Database(url_for(tmp_path))
    schema = platform_schema()
    try:
        await database.migrate(schema)
        merged = MetaData()
        for metadata in schema.metadata:
            for table in metadata.tables.values():
                table.to_metadata(merged)

        def diff(connection: Connection) -> list[object]:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "include_name": compared_with_models}
            )
            return list(compare_metadata(context, merged))

        async with database.connect() as connection:
            assert await connection.run_sync(diff) == []
    finally:
        await database.aclose()
