"""The chat REST API through the real ASGI app, with hub clients watching the events."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from hero.auth import mint_token
from hero.data import OutboxEvent
from hero.platform.app import Platform, create_app
from hero.platform.settings import load_settings
from hero.realtime.testing import HubTestClient, lifespan

KEY = "chat-api-signing-key-0123456789abcdef0123"
ALICE, BOB, CAROL = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
API = "/api/v1/chat"


def token(user: UUID, tenant: str = "acme") -> str:
    return mint_token(KEY, "hero.local", "hero.clients", user, tenant=tenant)


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    settings = load_settings(
        None,
        {
            "JwtOptions__SigningKey": KEY,
            "DatabaseOptions__ConnectionString": f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}",
        },
    )
    application = create_app(settings)
    async with lifespan(application):
        yield application  # type: ignore[misc]


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hero") as client:
        yield client


def auth(user: UUID, tenant: str = "acme") -> dict[str, str]:
    return {"Authorization": f"Bearer {token(user, tenant)}"}


def hub(app: FastAPI, user: UUID, unit: float) -> HubTestClient:
    return HubTestClient(
        app, "/realtime/hub", transport="LongPolling", access_token=token(user), timeout=10 * unit
    )


async def channel(http: httpx.AsyncClient, user: UUID, **body: Any) -> dict[str, Any]:
    response = await http.post(
        f"{API}/channels", json={"name": "general", "isPrivate": False, **body}, headers=auth(user)
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_channel_lifecycle_and_rules(http: httpx.AsyncClient) -> None:
    created = await channel(http, ALICE, description="talk")
    cid = created["id"]
    assert created["members"][0]["role"] == "admin"
    assert created["type"] == "channel" and created["slug"] == "general"
    # not a member: 404 for the channel's resources; discover shows it
    assert (await http.get(f"{API}/channels/{cid}", headers=auth(BOB))).status_code == 404
    found = (await http.get(f"{API}/channels/discover", headers=auth(BOB))).json()
    assert [c["id"] for c in found] == [cid]
    assert (await http.post(f"{API}/channels/{cid}/join", headers=auth(BOB))).status_code == 200
    assert (await http.get(f"{API}/channels/discover", headers=auth(BOB))).json() == []
    # a member lacking the role: 403
    put = {"name": "renamed", "isPrivate": False}
    assert (await http.put(f"{API}/channels/{cid}", json=put, headers=auth(BOB))).status_code == 403
    renamed = await http.put(f"{API}/channels/{cid}", json=put, headers=auth(ALICE))
    assert renamed.json()["name"] == "renamed"
    # archive: 404 for everybody, restore by the admin
    assert (await http.delete(f"{API}/channels/{cid}", headers=auth(ALICE))).status_code == 204
    assert (await http.get(f"{API}/channels/{cid}", headers=auth(ALICE))).status_code == 404
    assert (await http.get(f"{API}/channels", headers=auth(ALICE))).json() == []
    bad = await http.post(f"{API}/channels/{cid}/restore", headers=auth(BOB))
    assert bad.status_code == 403
    restored = await http.post(f"{API}/channels/{cid}/restore", headers=auth(ALICE))
    assert restored.status_code == 200
    assert [c["id"] for c in (await http.get(f"{API}/channels", headers=auth(BOB))).json()] == [cid]
    # another tenant never sees it
    other = await http.get(f"{API}/channels/{cid}", headers=auth(ALICE, "globex"))
    assert other.status_code == 404


async def test_bad_input_is_400_problem_naming_the_field(http: httpx.AsyncClient) -> None:
    cid = (await channel(http, ALICE))["id"]
    for body in ({"body": "   "}, {"body": "x" * 32769}, {}):
        response = await http.post(f"{API}/channels/{cid}/messages", json=body, headers=auth(ALICE))
        assert response.status_code == 400, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["field"] == "body"
    response = await http.get(f"{API}/channels/not-a-uuid", headers=auth(ALICE))
    assert response.status_code == 400
    assert (await http.get(f"{API}/channels")).status_code == 401
    unauthorized = await http.get(f"{API}/channels")
    hub_401 = await http.post("/realtime/hub/negotiate?negotiateVersion=1")
    assert unauthorized.json()["type"].rsplit("/", 1)[0] == hub_401.json()["type"].rsplit("/", 1)[0]
    assert (
        await http.post(f"{API}/dms", json={"userIds": [str(ALICE)]}, headers=auth(ALICE))
    ).status_code == 400
    many = {"userIds": [str(uuid.uuid4()) for _ in range(9)]}
    assert (await http.post(f"{API}/dms", json=many, headers=auth(ALICE))).status_code == 400


async def test_dms_are_found_again(http: httpx.AsyncClient) -> None:
    first = await http.post(f"{API}/dms", json={"userIds": [str(BOB)]}, headers=auth(ALICE))
    again = await http.post(f"{API}/dms", json={"userIds": [str(ALICE)]}, headers=auth(BOB))
    assert first.json()["id"] == again.json()["id"]
    assert first.json()["type"] == "directMessage"
    group = await http.post(
        f"{API}/dms", json={"userIds": [str(BOB), str(CAROL)]}, headers=auth(ALICE)
    )
    assert group.json()["type"] == "groupMessage" and len(group.json()["members"]) == 3


async def test_messages_threads_edit_delete_read_search(http: httpx.AsyncClient) -> None:
    cid = (await channel(http, ALICE))["id"]
    await http.post(f"{API}/channels/{cid}/join", headers=auth(BOB))
    post = f"{API}/channels/{cid}/messages"
    m1 = (await http.post(post, json={"body": " hello world "}, headers=auth(ALICE))).json()
    assert m1["body"] == "hello world"
    reply = await http.post(
        post, json={"body": "a reply", "parentMessageId": m1["id"]}, headers=auth(BOB)
    )
    assert reply.status_code == 201
    nested = await http.post(
        post, json={"body": "deep", "parentMessageId": reply.json()["id"]}, headers=auth(BOB)
    )
    assert nested.status_code == 400
    m2 = (await http.post(post, json={"body": "second words"}, headers=auth(ALICE))).json()
    top = (await http.get(post, headers=auth(BOB))).json()
    assert [m["id"] for m in top] == [m2["id"], m1["id"]] and top[1]["replyCount"] == 1
    after = (await http.get(post, params={"after": m1["id"]}, headers=auth(BOB))).json()
    assert [m["id"] for m in after] == [m2["id"]]
    replies = (await http.get(f"{API}/messages/{m1['id']}/replies", headers=auth(BOB))).json()
    assert [m["body"] for m in replies] == ["a reply"]
    # edit: author only
    edit = f"{API}/messages/{m2['id']}"
    assert (await http.put(edit, json={"body": "x"}, headers=auth(BOB))).status_code == 403
    assert (await http.put(edit, json={"body": "edited"}, headers=auth(ALICE))).json()[
        "editedAtUtc"
    ]
    # unread counts newer top-level messages of others (bob's own reply is in a thread)
    chan = (await http.get(f"{API}/channels/{cid}", headers=auth(BOB))).json()
    assert chan["unreadCount"] == 2
    read = await http.post(
        f"{API}/channels/{cid}/read", json={"messageId": m1["id"]}, headers=auth(BOB)
    )
    assert read.json()["unreadCount"] == 1
    # delete: tombstone, idempotent; the admin may delete another's message
    assert (
        await http.delete(f"{API}/messages/{reply.json()['id']}", headers=auth(ALICE))
    ).status_code == 204
    assert (
        await http.delete(f"{API}/messages/{reply.json()['id']}", headers=auth(ALICE))
    ).status_code == 204
    chan = (await http.get(f"{API}/channels/{cid}", headers=auth(BOB))).json()
    assert chan["unreadCount"] == 1
    hits = (await http.get(f"{API}/search", params={"q": "hello"}, headers=auth(BOB))).json()
    assert [m["id"] for m in hits] == [m1["id"]]
    assert (
        await http.get(f"{API}/search", params={"q": "hello"}, headers=auth(CAROL))
    ).json() == []
    # a non-member gets 404 for a message
    assert (await http.put(edit, json={"body": "y"}, headers=auth(CAROL))).status_code == 404


async def test_events_reach_exactly_their_audience(
    app: FastAPI, http: httpx.AsyncClient, unit: float
) -> None:
    cid = (await channel(http, ALICE))["id"]
    wait = 5 * unit
    async with (
        hub(app, ALICE, unit) as alice,
        hub(app, BOB, unit) as bob,
        hub(app, CAROL, unit) as carol,
    ):
        # bob's open connection starts receiving once he is added, without reconnecting
        await http.post(
            f"{API}/channels/{cid}/members", json={"userIds": [str(BOB)]}, headers=auth(ALICE)
        )
        assert await bob.next_message("ChatChannelAdded", timeout=wait) == ({"channelId": cid},)
        assert await alice.next_message("ChatChannelMemberAdded", timeout=wait) == (
            {"channelId": cid, "userId": str(BOB)},
        )
        post = f"{API}/channels/{cid}/messages"
        sent = await http.post(
            post, json={"body": "hi"}, headers={**auth(ALICE), "Idempotency-Key": "k1"}
        )
        (created,) = await bob.next_message("ChatMessageCreated", timeout=wait)
        assert created == sent.json()
        # a replay returns the first result and broadcasts nothing
        replay = await http.post(
            post, json={"body": "hi"}, headers={**auth(ALICE), "Idempotency-Key": "k1"}
        )
        assert replay.json()["id"] == sent.json()["id"]
        mid = sent.json()["id"]
        for _ in range(2):
            await http.post(f"{API}/messages/{mid}/pin", headers=auth(BOB))
            await http.post(
                f"{API}/messages/{mid}/reactions", json={"emoji": "👍"}, headers=auth(BOB)
            )
        await http.post(post, json={"body": "fence"}, headers=auth(ALICE))
        assert (await bob.next_message("ChatMessagePinned", timeout=wait))[0]["isPinned"]
        reaction = (await bob.next_message("ChatReactionChanged", timeout=wait))[0]
        assert reaction["kind"] == "added" and reaction["emoji"] == "👍"
        assert (await bob.next_message("ChatMessageCreated", timeout=wait))[0]["body"] == "fence"
        for target in ("ChatMessageCreated", "ChatMessagePinned", "ChatReactionChanged"):
            with pytest.raises(TimeoutError):
                await bob.next_message(target, timeout=0)
        # read: ChatChannelRead to the reader only, ChatChannelMemberRead to the channel
        await http.post(f"{API}/channels/{cid}/read", json={"messageId": mid}, headers=auth(BOB))
        assert (await bob.next_message("ChatChannelRead", timeout=wait))[0][
            "lastReadMessageId"
        ] == mid
        assert (await alice.next_message("ChatChannelMemberRead", timeout=wait))[0][
            "userId"
        ] == str(BOB)
        # a removed member stops receiving at once
        await http.delete(f"{API}/channels/{cid}/members/{BOB}", headers=auth(ALICE))
        assert await bob.next_message("ChatChannelRemoved", timeout=wait) == ({"channelId": cid},)
        await http.post(post, json={"body": "after removal"}, headers=auth(ALICE))
        assert (await alice.next_message("ChatMessageCreated", timeout=wait))[0]["body"] == "hi"
        while (await alice.next_message("ChatMessageCreated", timeout=wait))[0][
            "body"
        ] != "after removal":
            pass
        await http.post(
            f"{API}/channels/{cid}/members", json={"userIds": [str(CAROL)]}, headers=auth(ALICE)
        )
        assert await carol.next_message("ChatChannelAdded", timeout=wait) == ({"channelId": cid},)
        with pytest.raises(TimeoutError):
            await bob.next_message("ChatMessageCreated", timeout=0)
        with pytest.raises(TimeoutError):
            await carol.next_message("ChatMessageCreated", timeout=0)
        with pytest.raises(TimeoutError):
            await alice.next_message("ChatChannelRead", timeout=0)


async def test_rolled_back_transaction_sends_nothing(app: FastAPI) -> None:
    platform: Platform = app.state.platform
    with pytest.raises(RuntimeError):
        async with platform.outbox.transaction() as work:
            work.publish("acme", "channel:x", {"op": "send"})
            raise RuntimeError("roll back")
    async with platform.database.sessions() as session:
        assert (await session.scalars(select(OutboxEvent))).all() == []
