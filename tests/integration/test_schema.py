"""The migrations produce exactly the models' schema, on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, text
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


def _url(backend: str, folder: Path, request: pytest.FixtureRequest) -> str:
    """A fresh SQLite file, or the test PostgreSQL (a fresh database per test)."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{folder / 'schema.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_migrations_match_the_models(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = _url(backend, tmp_path, request)
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


def _upgrade_to(connection: Connection, schema: Any, revision: str) -> None:
    command.upgrade(schema.alembic_config(connection), revision)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_the_sequence_migration_numbers_existing_messages_in_id_order(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Rows written before `chat_messages.seq` existed are numbered per channel in id order;
    full-text search still finds them afterwards (on SQLite the FTS5 index refers to rowids,
    which the migration must not renumber)."""
    url = _url(backend, tmp_path, request)
    schema = platform_schema()
    database = Database(url)
    now = datetime.now(UTC)
    channels = [uuid.uuid4(), uuid.uuid4()]
    messages = sorted(uuid.uuid4() for _ in range(5))  # the id order to be numbered in
    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(_upgrade_to, schema, "chat@2139666da9c9")
            for channel in channels:
                await connection.execute(
                    text(
                        "INSERT INTO chat_channels (id, tenant_id, type, name, slug, is_private,"
                        " created_by_user_id, created_at, updated_at) VALUES (:id, 'acme',"
                        " 'channel', 'c', 'c', false, :id, :now, :now)"
                    ),
                    {"id": _bound(backend, channel), "now": now},
                )
            for index, message in enumerate(reversed(messages)):  # inserted newest id first
                await connection.execute(
                    text(
                        "INSERT INTO chat_messages (id, tenant_id, channel_id, author_user_id,"
                        " body, reply_count, mentions, created_at) VALUES (:id, 'acme',"
                        " :channel, :channel, :body, 0, '[]', :now)"
                    ),
                    {
                        "id": _bound(backend, message),
                        "channel": _bound(backend, channels[index % 2]),
                        "body": f"word{index}",
                        "now": now,
                    },
                )
        assert await database.migrate(schema) == schema.heads()
        async with database.engine.connect() as connection:
            rows = (
                await connection.execute(
                    text("SELECT id, channel_id, seq FROM chat_messages ORDER BY seq, id")
                )
            ).all()
            if backend == "sqlite":
                found = await connection.scalar(
                    text(
                        "SELECT count(*) FROM chat_messages m JOIN chat_messages_fts f"
                        " ON f.rowid = m.rowid WHERE chat_messages_fts MATCH 'word3'"
                        " AND m.body = 'word3'"
                    )
                )
                assert found == 1
    finally:
        await database.aclose()
    assert sorted(_numbered_in_id_order((c, m, q) for m, c, q in rows)) == [2, 3]


def _bound(backend: str, value: uuid.UUID) -> object:
    """A UUID as each backend stores it for `sa.Uuid` (SQLite: 32 hex digits)."""
    return value.hex if backend == "sqlite" else value


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_the_notification_sequence_migration_numbers_each_users_rows_and_seeds_counters(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Each user's notifications are numbered in id order and the user's counter starts
    after the last one, so the next notification takes the next number."""
    schema = platform_schema()
    database = Database(_url(backend, tmp_path, request))
    now = datetime.now(UTC)
    users = {uuid.uuid4(): 3, uuid.uuid4(): 2}
    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(_upgrade_to, schema, "users@89f5eafc6ad1")
            for user, count in users.items():
                for _ in range(count):
                    await connection.execute(
                        text(
                            "INSERT INTO notifications (id, tenant_id, user_id, type, title,"
                            " created_at) VALUES (:id, 'acme', :user, 't', 'x', :now)"
                        ),
                        {
                            "id": _bound(backend, uuid.uuid4()),
                            "user": _bound(backend, user),
                            "now": now,
                        },
                    )
        assert await database.migrate(schema) == schema.heads()
        async with database.engine.connect() as connection:
            rows = (
                await connection.execute(
                    text("SELECT user_id, id, seq FROM notifications ORDER BY user_id, seq")
                )
            ).all()
            counters = dict(
                (
                    await connection.execute(
                        text("SELECT user_id, last_seq FROM notification_counters")
                    )
                ).all()
            )
    finally:
        await database.aclose()
    assert sorted(_numbered_in_id_order(rows)) == sorted(users.values())
    assert sorted(counters.values()) == sorted(users.values())


def _numbered_in_id_order(rows: Any) -> list[int]:
    """Given (group, id, seq) rows, check that each group's rows are numbered 1, 2, ... in
    id order; returns the groups' sizes."""
    groups: dict[str, list[tuple[str, int]]] = {}
    for group, row_id, seq in rows:
        groups.setdefault(str(group), []).append((str(row_id), seq))
    for numbered in groups.values():
        numbered.sort(key=lambda pair: pair[1])
        assert [seq for _, seq in numbered] == list(range(1, len(numbered) + 1))
        assert [i for i, _ in numbered] == sorted(i for i, _ in numbered)
    return [len(numbered) for numbered in groups.values()]
