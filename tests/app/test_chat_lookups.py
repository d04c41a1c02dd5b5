"""The hub's chat lookups (`channels_of` on connect, `is_member` for Typing and JoinChannel)
answer many concurrent callers from batched queries: each caller still gets exactly its own
answer, per tenant, without archived channels, on a real SQLite database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID

import pytest

from tests.app.chat_room import ALICE, BOB, CAROL, DAVE, Room, open_room


@pytest.fixture
async def room(tmp_path: Path, unit: float) -> AsyncIterator[Room]:
    async with open_room(tmp_path, unit) as opened:
        yield opened


async def test_concurrent_lookups_each_get_their_own_answer(room: Room) -> None:
    general = UUID(await room.channel(ALICE, "general", BOB))
    random = UUID(await room.channel(CAROL, "random", DAVE, ALICE))
    # The same user id in another tenant, with a channel of its own there.
    elsewhere = UUID(await room.channel(ALICE, "elsewhere", tenant="globex"))
    old = UUID(await room.channel(BOB, "old", CAROL))
    await room.call(BOB, "DELETE", f"/channels/{old}", 204)
    chat = room.app.state.platform.chat
    stranger = uuid.uuid4()

    asked = [
        ("acme", ALICE),
        ("acme", BOB),
        ("acme", CAROL),
        ("acme", DAVE),
        ("globex", ALICE),
        ("globex", BOB),
        ("acme", stranger),
        ("acme", ALICE),  # the same key twice in one batch
    ]
    answers = await asyncio.gather(*(chat.channels_of(t, u) for t, u in asked))
    assert [set(a) for a in answers] == [
        {general, random},
        {general},
        {random},
        {random},
        {elsewhere},
        set(),
        set(),
        {general, random},
    ]

    checks = [
        (("acme", general, BOB), True),
        (("acme", random, BOB), False),
        (("globex", general, BOB), False),  # right channel and user, wrong tenant
        (("acme", elsewhere, ALICE), False),
        (("globex", elsewhere, ALICE), True),
        (("acme", old, CAROL), False),  # archived
        (("acme", random, ALICE), True),
    ]
    members = await asyncio.gather(*(chat.is_member(*key) for key, _ in checks))
    assert members == [expected for _, expected in checks]
