"""History cursors and unread counts follow the commit order, not the ids' clocks.

A message id is a UUIDv7 minted from the clock of the instance that handled the post. With
several instances (or a clock stepped back), a message committed later can carry a smaller
id than one a client has already seen. Here the second message's id is minted one minute in
the past, as on an instance whose clock is behind: a catch-up `after=` the first id still
returns it, `before=` the second returns the first, the history lists them in commit order,
it is unread for a member who read the first, and reading the first after it changes nothing.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hero.modules.chat import service
from tests.app.chat_room import ALICE, BOB, Cast, Room, Watch, open_cast

Scene = tuple[Cast, list[Watch]]


@pytest.fixture
async def scene(tmp_path: Path, unit: float) -> AsyncIterator[Scene]:
    async with open_cast(tmp_path, unit) as opened:
        yield opened


def uuid7_at(milliseconds: int) -> uuid.UUID:
    """A UUIDv7 for the given Unix time, random in the rest."""
    value = (milliseconds << 80) | (0x7 << 76) | (uuid.uuid4().int & ((1 << 76) - 1))
    value = (value & ~(0b11 << 62)) | (0b10 << 62)  # the RFC 9562 variant
    return uuid.UUID(int=value)


async def post_from_a_clock_behind(
    room: Room, user: uuid.UUID, path: str, monkeypatch: pytest.MonkeyPatch, **body: Any
) -> dict[str, Any]:
    """Post with the message id minted a minute in the past (an instance whose clock is
    behind)."""
    behind = uuid7_at(int(time.time() * 1000) - 60_000)
    monkeypatch.setattr(service, "new_id", lambda: behind)
    try:
        posted: dict[str, Any] = await room.json(user, "POST", path, **body)
    finally:
        monkeypatch.undo()
    return posted


async def test_a_message_with_an_older_id_is_caught_up_in_commit_order(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    cast, _ = scene
    room, general = cast.room, cast.general
    path = f"/channels/{general}/messages"
    first = await room.json(ALICE, "POST", path, body="first")
    await room.json(BOB, "POST", f"/channels/{general}/read", messageId=first["id"])

    second = await post_from_a_clock_behind(
        room, ALICE, path, monkeypatch, body="second, from a clock behind"
    )
    assert uuid.UUID(second["id"]) < uuid.UUID(first["id"])  # the premise

    caught_up = await room.json(BOB, "GET", f"{path}?after={first['id']}")
    assert [m["id"] for m in caught_up] == [second["id"]]
    earlier = await room.json(BOB, "GET", f"{path}?before={second['id']}")
    assert [m["id"] for m in earlier] == [first["id"]]
    newest_first = await room.json(BOB, "GET", path)
    assert [m["id"] for m in newest_first] == [second["id"], first["id"]]

    assert (await room.json(BOB, "GET", f"/channels/{general}"))["unreadCount"] == 1
    # reading "first" again is not a step forward; reading "second" is
    await room.json(BOB, "POST", f"/channels/{general}/read", messageId=first["id"])
    assert (await room.json(BOB, "GET", f"/channels/{general}"))["unreadCount"] == 1
    await room.json(BOB, "POST", f"/channels/{general}/read", messageId=second["id"])
    assert (await room.json(BOB, "GET", f"/channels/{general}"))["unreadCount"] == 0


async def test_a_cursor_that_is_no_message_of_the_channel_compares_by_time(scene: Scene) -> None:
    cast, _ = scene
    room, general = cast.room, cast.general
    path = f"/channels/{general}/messages"
    message = await room.json(ALICE, "POST", path, body="now")
    past = uuid7_at(int(time.time() * 1000) - 60_000)
    assert [m["id"] for m in await room.json(BOB, "GET", f"{path}?after={past}")] == [message["id"]]
    assert await room.json(BOB, "GET", f"{path}?before={past}") == []


async def test_thread_replies_follow_the_commit_order_too(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    cast, _ = scene
    room, general = cast.room, cast.general
    path = f"/channels/{general}/messages"
    root = await room.json(ALICE, "POST", path, body="root")
    one = await room.json(BOB, "POST", path, body="one", parentMessageId=root["id"])
    two = await post_from_a_clock_behind(
        room, BOB, path, monkeypatch, body="two", parentMessageId=root["id"]
    )
    replies = f"/messages/{root['id']}/replies"
    assert [m["id"] for m in await room.json(ALICE, "GET", replies)] == [two["id"], one["id"]]
    older = await room.json(ALICE, "GET", f"{replies}?before={two['id']}")
    assert [m["id"] for m in older] == [one["id"]]
