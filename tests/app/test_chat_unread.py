"""Unread counts and read events, as a Slack-like client expects them.

The rule: a member's `unreadCount` counts the channel's top-level messages that are newer
than the member's read watermark, not deleted, and written by somebody else. The author's
own messages are never unread for the author, and thread replies are read in their thread,
so they do not count toward the channel. `read` only moves the watermark forward: the
reader's connections get `ChatChannelRead`, the channel gets `ChatChannelMemberRead`, and
reading an older message changes nothing and sends nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID

import pytest

from tests.app.chat_room import ALICE, BOB, CAROL, Cast, Room, Watch, open_cast

Scene = tuple[Cast, list[Watch]]


@pytest.fixture
async def scene(tmp_path: Path, unit: float) -> AsyncIterator[Scene]:
    async with open_cast(tmp_path, unit) as opened:
        yield opened


async def unread(room: Room, user: UUID, channel: str) -> tuple[int, int]:
    """The count in the channel itself and in the caller's channel list (they agree)."""
    one = await room.json(user, "GET", f"/channels/{channel}")
    listed = await room.json(user, "GET", "/channels")
    return one["unreadCount"], next(c for c in listed if c["id"] == channel)["unreadCount"]


async def test_own_messages_and_thread_replies_are_not_unread(scene: Scene) -> None:
    cast, _ = scene
    room, general = cast.room, cast.general
    path = f"/channels/{general}/messages"
    m1 = await room.json(ALICE, "POST", path, body="one")
    await room.json(ALICE, "POST", path, body="two")
    assert await unread(room, BOB, general) == (2, 2)
    assert await unread(room, ALICE, general) == (0, 0)  # both are hers
    await room.json(BOB, "POST", path, body="mine")
    assert await unread(room, BOB, general) == (2, 2)
    assert await unread(room, ALICE, general) == (1, 1)
    await room.json(ALICE, "POST", path, body="in the thread", parentMessageId=m1["id"])
    assert await unread(room, BOB, general) == (2, 2)
    last = await room.json(ALICE, "POST", path, body="three")
    assert await unread(room, BOB, general) == (3, 3)
    await room.call(ALICE, "DELETE", f"/messages/{last['id']}", 204)
    assert await unread(room, BOB, general) == (2, 2)


async def test_read_moves_forward_only_and_tells_the_right_connections(scene: Scene) -> None:
    cast, (alice, bob, _, _) = scene
    room, general = cast.room, cast.general
    path = f"/channels/{general}/messages"
    m1 = await room.json(ALICE, "POST", path, body="one")
    m2 = await room.json(ALICE, "POST", path, body="two")
    created = [("ChatMessageCreated", m1), ("ChatMessageCreated", m2)]
    await cast.expect(*created, to=(alice, bob))
    read = await room.json(BOB, "POST", f"/channels/{general}/read", messageId=m2["id"])
    assert read == {"channelId": general, "lastReadMessageId": m2["id"], "unreadCount": 0}
    mark = {"channelId": general, "lastReadMessageId": m2["id"]}
    by_bob = ("ChatChannelMemberRead", {**mark, "userId": str(BOB)})
    await cast.expect_each({bob: [("ChatChannelRead", mark), by_bob], alice: [by_bob]})
    # an older message: the watermark stays, nothing is sent
    again = await room.json(BOB, "POST", f"/channels/{general}/read", messageId=m1["id"])
    assert again == read
    await cast.expect(to=())
    # a message of another channel: 400, nothing sent
    _, _, carol, dave = cast.everyone
    elsewhere = await room.json(CAROL, "POST", f"/channels/{cast.random}/messages", body="x")
    await room.call(BOB, "POST", f"/channels/{general}/read", 400, messageId=elsewhere["id"])
    await cast.expect(("ChatMessageCreated", elsewhere), to=(carol, dave))
