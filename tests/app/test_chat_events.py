"""Every chat event reaches exactly its audience, once, and only when something changed.

The scene (`tests/app/chat_room.py`): `general` = alice (admin) + bob, `random` = carol
(admin) + dave, one tenant, a live hub connection each. After every step each connection is
fenced: it must have received exactly the listed events in that window, and nothing else.

Targets as the code sends them (hero.conventions.Events). Reactions are one target,
`ChatReactionChanged` with `kind` "added" / "removed". There is no ChatChannelUpdated /
Archived / Restored event: update, archive and restore change only the REST state and the
members' `channel:{id}` group membership.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.app.chat_room import ALICE, BOB, CAROL, DAVE, Cast, Event, Watch, open_cast

Scene = tuple[Cast, list[Watch]]


@pytest.fixture
async def scene(tmp_path: Path, unit: float) -> AsyncIterator[Scene]:
    async with open_cast(tmp_path, unit) as opened:
        yield opened


def added(channel: str, user: Any) -> Event:
    return ("ChatChannelMemberAdded", {"channelId": channel, "userId": str(user)})


def removed(channel: str, user: Any) -> Event:
    return ("ChatChannelMemberRemoved", {"channelId": channel, "userId": str(user)})


def listed(channel: str) -> Event:
    return ("ChatChannelAdded", {"channelId": channel})


def unlisted(channel: str) -> Event:
    return ("ChatChannelRemoved", {"channelId": channel})


async def test_message_edit_pin_and_delete_reach_members_once(scene: Scene) -> None:
    cast, (alice, bob, _, _) = scene
    room, members, path = cast.room, (alice, bob), f"/channels/{cast.general}/messages"
    sent = await room.json(ALICE, "POST", path, body="hello")
    await cast.expect(("ChatMessageCreated", sent), to=members)
    mid = sent["id"]
    edited = await room.json(ALICE, "PUT", f"/messages/{mid}", body="hello there")
    assert edited["body"] == "hello there" and edited["editedAtUtc"]
    assert await room.json(ALICE, "PUT", f"/messages/{mid}", body=" hello there ") == edited
    await cast.expect(("ChatMessageEdited", edited), to=members)
    # pin twice: one event; unpin twice: one event
    pinned = await room.json(BOB, "POST", f"/messages/{mid}/pin")
    assert pinned["isPinned"] and pinned["pinnedByUserId"] == str(BOB)
    assert await room.json(ALICE, "POST", f"/messages/{mid}/pin") == pinned
    await cast.expect(("ChatMessagePinned", pinned), to=members)
    unpinned = await room.json(ALICE, "DELETE", f"/messages/{mid}/pin")
    assert not unpinned["isPinned"] and unpinned["pinnedByUserId"] is None
    assert await room.json(BOB, "DELETE", f"/messages/{mid}/pin") == unpinned
    await cast.expect(("ChatMessageUnpinned", unpinned), to=members)
    # unpinning a message that was never pinned sends nothing
    other = await room.json(BOB, "POST", path, body="never pinned")
    await room.json(BOB, "DELETE", f"/messages/{other['id']}/pin")
    await cast.expect(("ChatMessageCreated", other), to=members)
    # delete twice: a tombstone and one event; the admin may delete bob's message
    for _ in range(2):
        await room.call(ALICE, "DELETE", f"/messages/{mid}", 204)
    await room.call(ALICE, "DELETE", f"/messages/{other['id']}", 204)
    await cast.expect(
        ("ChatMessageDeleted", {"channelId": cast.general, "messageId": mid}),
        ("ChatMessageDeleted", {"channelId": cast.general, "messageId": other["id"]}),
        to=members,
    )
    (latest, tomb) = await room.json(BOB, "GET", path)
    assert (tomb["id"], tomb["body"], latest["body"]) == (mid, "", "")
    assert tomb["deletedAtUtc"] and latest["deletedAtUtc"]


async def test_deleting_a_pinned_message_takes_it_off_the_pins(scene: Scene) -> None:
    cast, (alice, bob, _, _) = scene
    room, members = cast.room, (alice, bob)
    sent = await room.json(ALICE, "POST", f"/channels/{cast.general}/messages", body="pin me")
    pinned = await room.json(BOB, "POST", f"/messages/{sent['id']}/pin")
    await room.call(ALICE, "DELETE", f"/messages/{sent['id']}", 204)
    gone = {"channelId": cast.general, "messageId": sent["id"]}
    await cast.expect(
        ("ChatMessageCreated", sent),
        ("ChatMessagePinned", pinned),
        ("ChatMessageDeleted", gone),  # the deletion says it all: no Unpinned besides
        to=members,
    )
    assert await room.json(BOB, "GET", f"/channels/{cast.general}/pinned") == []
    (tomb,) = await room.json(BOB, "GET", f"/channels/{cast.general}/messages")
    assert not tomb["isPinned"] and tomb["pinnedByUserId"] is None
    await room.json(BOB, "DELETE", f"/messages/{sent['id']}/pin")  # not pinned: no event
    await cast.expect(to=())


async def test_reactions_change_once_per_user_and_emoji(scene: Scene) -> None:
    cast, (alice, bob, _, _) = scene
    room, members = cast.room, (alice, bob)
    sent = await room.json(ALICE, "POST", f"/channels/{cast.general}/messages", body="vote")
    await cast.expect(("ChatMessageCreated", sent), to=members)
    mid, react = sent["id"], f"/messages/{sent['id']}/reactions"
    for _ in range(2):
        voted = await room.json(BOB, "POST", react, emoji="👍")
    assert [(r["userId"], r["emoji"]) for r in voted["reactions"]] == [(str(BOB), "👍")]
    change = {"channelId": cast.general, "messageId": mid, "userId": str(BOB), "emoji": "👍"}
    await cast.expect(("ChatReactionChanged", {**change, "kind": "added"}), to=members)
    for _ in range(2):
        cleared = await room.json(BOB, "DELETE", f"{react}/👍")
    assert cleared["reactions"] == []
    await room.json(BOB, "DELETE", f"{react}/🎉")  # never added
    await room.json(ALICE, "DELETE", f"{react}/👍")  # alice never reacted
    await cast.expect(("ChatReactionChanged", {**change, "kind": "removed"}), to=members)


async def test_refused_changes_send_nothing(scene: Scene) -> None:
    cast, (alice, bob, _, _) = scene
    room, members = cast.room, (alice, bob)
    sent = await room.json(ALICE, "POST", f"/channels/{cast.general}/messages", body="mine")
    await cast.expect(("ChatMessageCreated", sent), to=members)
    mid = sent["id"]
    # carol is no member: 404; bob may not edit or delete alice's message: 403
    await room.call(CAROL, "PUT", f"/messages/{mid}", 404, body="x")
    await room.call(CAROL, "POST", f"/messages/{mid}/pin", 404)
    await room.call(CAROL, "POST", f"/messages/{mid}/reactions", 404, emoji="👎")
    await room.call(CAROL, "POST", f"/channels/{cast.general}/messages", 404, body="x")
    await room.call(BOB, "PUT", f"/messages/{mid}", 403, body="x")
    await room.call(BOB, "DELETE", f"/messages/{mid}", 403)
    await room.call(BOB, "PUT", f"/channels/{cast.general}", 403, name="x", isPrivate=False)
    await cast.expect(to=())
    # a deleted message cannot be edited, pinned or reacted to
    await room.call(ALICE, "DELETE", f"/messages/{mid}", 204)
    await cast.expect(
        ("ChatMessageDeleted", {"channelId": cast.general, "messageId": mid}), to=members
    )
    await room.call(ALICE, "PUT", f"/messages/{mid}", 409, body="back")
    await room.call(BOB, "POST", f"/messages/{mid}/pin", 409)
    await room.call(BOB, "POST", f"/messages/{mid}/reactions", 409, emoji="👍")
    await cast.expect(to=())


async def test_typing_reaches_the_other_members(scene: Scene) -> None:
    cast, (alice, bob, carol, _) = scene
    await alice.client.invoke("Typing", cast.general)
    await carol.client.invoke("Typing", cast.general)  # no member: a silent no-op
    typing = ("ChatTypingStarted", {"channelId": cast.general, "userId": str(ALICE)})
    await cast.expect(typing, to=(bob,))


async def test_mention_notifies_the_mentioned_member_only(scene: Scene) -> None:
    cast, (alice, bob, _, _) = scene
    path = f"/channels/{cast.general}/messages"
    sent = await cast.room.json(ALICE, "POST", path, body="hi @bob, @alice and @carol")
    assert sent["mentions"] == [str(BOB)]  # not the author, not carol (no member)
    created = ("ChatMessageCreated", sent)
    assert await alice.fence() == [created]
    # the notification travels on bob's own stream: no order against the channel's
    heard = sorted(await bob.fence(), key=lambda event: event[0])
    assert [target for target, _ in heard] == ["ChatMessageCreated", "NotificationCreated"]
    assert heard[0] == created
    note = heard[1][1]
    assert note["type"] == "chat.mention" and note["source"] == "chat"
    assert note["metadata"] == {
        "channelId": cast.general,
        "messageId": sent["id"],
        "authorUserId": str(ALICE),
    }
    await cast.expect(to=())


async def test_channel_update_archive_restore_stay_with_members(scene: Scene) -> None:
    cast, (alice, bob, _, _) = scene
    room, general = cast.room, cast.general
    renamed = await room.json(ALICE, "PUT", f"/channels/{general}", name="Town hall")
    assert renamed["name"] == "Town hall"
    assert (await room.json(BOB, "GET", f"/channels/{general}"))["name"] == "Town hall"
    await cast.expect(to=())  # no ChatChannelUpdated exists; nobody else hears anything
    await room.call(ALICE, "DELETE", f"/channels/{general}", 204)
    await room.call(ALICE, "DELETE", f"/channels/{general}", 404)  # already archived
    await room.call(BOB, "POST", f"/channels/{general}/messages", 404, body="x")
    await bob.client.invoke("Typing", general)  # archived: a no-op
    late = await cast.connect(BOB)  # connects while the channel is archived
    await cast.expect(to=())
    await room.call(BOB, "POST", f"/channels/{general}/restore", 403)
    for _ in range(2):
        await room.json(ALICE, "POST", f"/channels/{general}/restore")
    await cast.expect(to=())
    # restored: every member connection is back in the group, the late one included
    sent = await room.json(BOB, "POST", f"/channels/{general}/messages", body="back")
    await cast.expect(("ChatMessageCreated", sent), to=(alice, bob, late))


async def test_direct_messages_reach_the_participants_only(scene: Scene) -> None:
    cast, (alice, bob, carol, _) = scene
    room = cast.room
    dm = (await room.json(ALICE, "POST", "/dms", userIds=[str(BOB)]))["id"]
    await cast.expect_each(
        {alice: [added(dm, ALICE), listed(dm), added(dm, BOB)], bob: [added(dm, BOB), listed(dm)]}
    )
    # found again from either side, every time: 200, the same channel, no events
    for user, other in ((ALICE, BOB), (BOB, ALICE), (ALICE, BOB)):
        again = await room.call(user, "POST", "/dms", 200, userIds=[str(other)])
        assert again.json()["id"] == dm and again.json()["type"] == "directMessage"
    sent = await room.json(BOB, "POST", f"/channels/{dm}/messages", body="psst")
    await cast.expect(("ChatMessageCreated", sent), to=(alice, bob))
    # a group DM: the creator and both others, never dave
    group = await room.json(ALICE, "POST", "/dms", userIds=[str(BOB), str(CAROL)])
    assert group["type"] == "groupMessage"
    gid = group["id"]
    await cast.expect_each(
        {
            alice: [added(gid, ALICE), listed(gid), added(gid, BOB), added(gid, CAROL)],
            bob: [added(gid, BOB), listed(gid), added(gid, CAROL)],
            carol: [added(gid, CAROL), listed(gid)],
        }
    )
    sent = await room.json(CAROL, "POST", f"/channels/{gid}/messages", body="all of us")
    await cast.expect(("ChatMessageCreated", sent), to=(alice, bob, carol))
    await room.call(DAVE, "POST", f"/channels/{gid}/messages", 404, body="me too")
    await cast.expect(to=())


async def test_a_one_to_one_dm_keeps_both_participants(scene: Scene) -> None:
    cast, (alice, bob, _, _) = scene
    room = cast.room
    dm = (await room.json(ALICE, "POST", "/dms", userIds=[str(BOB)]))["id"]
    await cast.expect_each(
        {alice: [added(dm, ALICE), listed(dm), added(dm, BOB)], bob: [added(dm, BOB), listed(dm)]}
    )
    # leaving (or removing the other) would strand the pair: find-or-create would hand
    # back a channel one of them cannot post in
    await room.call(BOB, "DELETE", f"/channels/{dm}/members/{BOB}", 403)
    await room.call(ALICE, "DELETE", f"/channels/{dm}/members/{BOB}", 403)
    await cast.expect(to=())
    again = await room.json(BOB, "POST", "/dms", userIds=[str(ALICE)])
    assert again["id"] == dm and len(again["members"]) == 2
    sent = await room.json(BOB, "POST", f"/channels/{dm}/messages", body="still here")
    await cast.expect(("ChatMessageCreated", sent), to=(alice, bob))


async def test_removed_member_stops_receiving_at_once(scene: Scene) -> None:
    cast, (alice, bob, carol, dave) = scene
    room, general = cast.room, cast.general
    phone = await cast.connect(BOB)  # every connection of bob leaves
    await room.call(ALICE, "DELETE", f"/channels/{general}/members/{BOB}", 204)
    gone = [removed(general, BOB), unlisted(general)]
    await cast.expect_each({alice: [removed(general, BOB)], bob: gone, phone: gone})
    await room.call(ALICE, "DELETE", f"/channels/{general}/members/{BOB}", 404)
    await bob.client.invoke("Typing", general)  # no member any more: a no-op
    sent = await room.json(ALICE, "POST", f"/channels/{general}/messages", body="after bob")
    await cast.expect(("ChatMessageCreated", sent), to=(alice,))
    # leaving by oneself works the same way
    await room.call(DAVE, "DELETE", f"/channels/{cast.random}/members/{DAVE}", 204)
    left = [removed(cast.random, DAVE), unlisted(cast.random)]
    await cast.expect_each({carol: [removed(cast.random, DAVE)], dave: left})
    sent = await room.json(CAROL, "POST", f"/channels/{cast.random}/messages", body="alone")
    await cast.expect(("ChatMessageCreated", sent), to=(carol,))


async def test_added_member_receives_without_reconnecting(scene: Scene) -> None:
    cast, (alice, bob, carol, dave) = scene
    room, general = cast.room, cast.general
    both = [str(CAROL), str(BOB)]  # bob is a member already: nothing for him
    await room.json(ALICE, "POST", f"/channels/{general}/members", userIds=both)
    hello = added(general, CAROL)
    await cast.expect_each({alice: [hello], bob: [hello], carol: [hello, listed(general)]})
    sent = await room.json(BOB, "POST", f"/channels/{general}/messages", body="welcome")
    await cast.expect(("ChatMessageCreated", sent), to=(alice, bob, carol))
    # joining a public channel; joining again is a no-op
    for _ in range(2):
        await room.json(DAVE, "POST", f"/channels/{general}/join")
    hello = added(general, DAVE)
    await cast.expect_each(
        {alice: [hello], bob: [hello], carol: [hello], dave: [hello, listed(general)]}
    )
    sent = await room.json(DAVE, "POST", f"/channels/{general}/messages", body="hi all")
    await cast.expect(("ChatMessageCreated", sent), to=(alice, bob, carol, dave))


async def test_replies_reach_the_channel_and_count_on_the_parent(scene: Scene) -> None:
    cast, (alice, bob, _, _) = scene
    room, members, path = cast.room, (alice, bob), f"/channels/{cast.general}/messages"
    parent = await room.json(ALICE, "POST", path, body="thread start")
    await cast.expect(("ChatMessageCreated", parent), to=members)
    pid = parent["id"]
    first = await room.json(BOB, "POST", path, body="first reply", parentMessageId=pid)
    second = await room.json(ALICE, "POST", path, body="second reply", parentMessageId=pid)
    assert first["parentMessageId"] == second["parentMessageId"] == pid
    await cast.expect(("ChatMessageCreated", first), ("ChatMessageCreated", second), to=members)
    top = await room.json(BOB, "GET", path)
    assert [(m["id"], m["replyCount"]) for m in top] == [(pid, 2)]  # replies stay in threads
    thread = await room.json(BOB, "GET", f"/messages/{pid}/replies")
    assert [m["id"] for m in thread] == [second["id"], first["id"]]
    # a reply to a reply, or to another channel's message: 400, nothing sent
    await room.call(BOB, "POST", path, 400, body="deep", parentMessageId=first["id"])
    elsewhere = f"/channels/{cast.random}/messages"
    await room.call(CAROL, "POST", elsewhere, 400, body="x", parentMessageId=pid)
    await cast.expect(to=())
    await room.call(BOB, "DELETE", f"/messages/{first['id']}", 204)
    deleted = ("ChatMessageDeleted", {"channelId": cast.general, "messageId": first["id"]})
    await cast.expect(deleted, to=members)
    assert [m["replyCount"] for m in await room.json(ALICE, "GET", path)] == [1]


async def test_the_same_user_in_another_tenant_hears_nothing(scene: Scene) -> None:
    cast, (alice, _, _, _) = scene
    elsewhere = await cast.connect(ALICE, "globex")  # same subject, a globex token
    assert await alice.fence() == []  # her globex notes channel is no acme news
    await cast.room.json(ALICE, "POST", f"/channels/{cast.random}/join")
    await cast.expect_each(
        {
            alice: [added(cast.random, ALICE), listed(cast.random)],
            cast.everyone[2]: [added(cast.random, ALICE)],
            cast.everyone[3]: [added(cast.random, ALICE)],
        }
    )
    sent = await cast.room.json(CAROL, "POST", f"/channels/{cast.random}/messages", body="x")
    assert await alice.fence() == [("ChatMessageCreated", sent)]
    assert await elsewhere.fence() == []
