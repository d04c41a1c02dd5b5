"""UserDirectory.seen: one write per (tenant, user) and name, however many requests of that
user arrive while it is under way; a later name change writes again."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from hero.auth import Principal
from hero.data import Database
from hero.modules.users import UserDirectory, UsersModel
from hero.modules.users.directory import KnownUser


class GatedDirectory(UserDirectory):
    """Counts its writes; each waits for `gate` once it has begun (`begun` is set)."""

    def __init__(self, database: Database) -> None:
        super().__init__(database)
        self.writes: list[tuple[str, uuid.UUID, str | None]] = []
        self.begun = asyncio.Event()
        self.gate = asyncio.Event()

    async def _record(self, principal: Principal, name: str | None) -> None:
        self.writes.append((principal.tenant_id, principal.user_id, name))
        self.begun.set()
        await self.gate.wait()
        await super()._record(principal, name)


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'users.db'}")
    async with db.engine.begin() as connection:
        await connection.run_sync(UsersModel.metadata.create_all)
    try:
        yield db
    finally:
        await db.aclose()


def principal(user: uuid.UUID, name: str | None) -> Principal:
    return Principal(user_id=user, tenant_id="t1", name=name)


async def _all_while_writing(directory: GatedDirectory, *principals: Principal) -> None:
    """`seen` for each of `principals` at once; the writes are held until every request
    has taken its first step (they all start in the loop turn that begins the first write)."""
    directory.begun.clear()
    directory.gate.clear()
    requests = [asyncio.ensure_future(directory.seen(p)) for p in principals]
    await asyncio.wait_for(directory.begun.wait(), 10)
    directory.gate.set()
    await asyncio.wait_for(asyncio.gather(*requests), 10)


async def test_concurrent_requests_of_one_user_write_once(database: Database) -> None:
    directory = GatedDirectory(database)
    alice, bob = uuid.uuid4(), uuid.uuid4()
    await _all_while_writing(
        directory, *[principal(alice, "Alice")] * 20, *[principal(bob, "Bob")] * 5
    )
    assert sorted(directory.writes, key=str) == sorted(
        [("t1", alice, "Alice"), ("t1", bob, "Bob")], key=str
    )
    await directory.seen(principal(alice, "Alice"))  # known: no write
    assert len(directory.writes) == 2
    await _all_while_writing(directory, *[principal(alice, "Alice B.")] * 3)
    assert directory.writes[2:] == [("t1", alice, "Alice B.")]
    async with database.engine.connect() as connection:
        rows = (await connection.execute(select(KnownUser.user_id, KnownUser.name))).all()
    assert sorted(map(tuple, rows), key=str) == sorted([(alice, "Alice B."), (bob, "Bob")], key=str)


async def test_a_cancelled_waiter_leaves_the_write_alone(database: Database) -> None:
    directory = GatedDirectory(database)
    carol = uuid.uuid4()
    writer = asyncio.ensure_future(directory.seen(principal(carol, "Carol")))
    await asyncio.wait_for(directory.begun.wait(), 10)
    waiter = asyncio.ensure_future(directory.seen(principal(carol, "Carol")))
    await asyncio.sleep(0)  # one loop turn, not a wait: the waiter takes its first step
    waiter.cancel()
    directory.gate.set()
    await asyncio.wait_for(writer, 10)
    assert waiter.cancelled()
    assert directory.writes == [("t1", carol, "Carol")]
    await directory.seen(principal(carol, "Carol"))
    assert len(directory.writes) == 1
