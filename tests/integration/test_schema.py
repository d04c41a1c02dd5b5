"""The migrations produce exactly the models' schema, on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from hero.data import Database
from hero.data.database import compared_with_models
from hero.platform.schema import platform_schema

pytest_plugins = ("tests.support.postgres",)


def _differences(connection: Connection, metadata: MetaData) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_name": compared_with_models}
    )
    return list(compare_metadata(context, metadata))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_migrations_match_the_models(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite+aiosqlite:///{tmp_path / 'schema.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    schema = platform_schema()
    database = Database(url)
    try:
        assert await database.migrate(schema) == schema.heads()
        merged = MetaData()
        for metadata in schema.metadata:
            for table in metadata.tables.values():
                table.to_metadata(merged)
        async with database.engine.connect() as connection:
            differences = await connection.run_sync(_differences, merged)
    finally:
        await database.aclose()
    assert differences == []
