"""Tenant isolation, the whole platform in process: a user of another tenant cannot read,
change, join or hear anything of `acme`, and cannot tell an `acme` resource from a missing
one (403-vs-404 enumeration). The intruder is the strongest case there is: a token with
alice's own user id but tenant `globex`, plus an admin role.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from hero.auth import mint_token
from hero.conventions import Events
from hero.realtime.testing import HubInvocationError
from tests.app.chat_room import ALICE, API, BOB, CAROL, KEY, Room, open_room

OTHER = "globex"
NOTIFICATIONS = "/api/v1/notifications"


def intruder() -> dict[str, str]:
    """alice's user id, another tenant, the admin role."""
    raw = mint_token(KEY, "hero.local", "hero.clients", ALICE, tenant=OTHER, roles=["admin"])
    return {"Authorization": f"Bearer {raw}"}


def acme(user: UUID, *roles: str) -> dict[str, str]:
    raw = mint_token(KEY, "hero.local", "hero.clients", user, tenant="acme", roles=roles)
    return {"Authorization": f"Bearer {raw}"}


async def _acme_world(room: Room) -> dict[str, str]:
    """A public channel with a message (pinned, reacted to, with a reply) and a notification
    for alice; returns their ids."""
    channel = await room.channel(ALICE, "general", BOB)
    message = await room.json(ALICE, "POST", f"/channels/{channel}/messages", body="secret plan")
    mid = message["id"]
    await room.json(BOB, "POST", f"/channels/{channel}/messages", body="re", parentMessageId=mid)
    await room.json(ALICE, "POST", f"/messages/{mid}/pin")
    await room.json(BOB, "POST", f"/messages/{mid}/reactions", emoji="👍")
    note = await room.http.post(
        NOTIFICATIONS,
        json={"userId": str(ALICE), "type": "t", "title": "acme only"},
        headers=acme(BOB, "admin"),
    )
    assert note.status_code == 201, note.text
    return {"channel": channel, "message": mid, "notification": note.json()["id"]}


def _requests(ids: dict[str, str]) -> list[tuple[str, str, dict[str, Any] | None]]:
    c, m, n = ids["channel"], ids["message"], ids["notification"]
    return [
        ("GET", f"{API}/channels/{c}", None),
        ("PUT", f"{API}/channels/{c}", {"name": "mine now"}),
        ("DELETE", f"{API}/channels/{c}", None),
        ("POST", f"{API}/channels/{c}/restore", None),
        ("POST", f"{API}/channels/{c}/join", None),
        ("POST", f"{API}/channels/{c}/members", {"userIds": [str(ALICE)]}),
        ("DELETE", f"{API}/channels/{c}/members/{BOB}", None),
        ("POST", f"{API}/channels/{c}/messages", {"body": "hello"}),
        ("GET", f"{API}/channels/{c}/messages", None),
        ("POST", f"{API}/channels/{c}/read", {"messageId": m}),
        ("GET", f"{API}/channels/{c}/pinned", None),
        ("GET", f"{API}/messages/{m}/replies", None),
        ("PUT", f"{API}/messages/{m}", {"body": "edited"}),
        ("DELETE", f"{API}/messages/{m}", None),
        ("POST", f"{API}/messages/{m}/pin", None),
        ("DELETE", f"{API}/messages/{m}/pin", None),
        ("POST", f"{API}/messages/{m}/reactions", {"emoji": "👎"}),
        ("DELETE", f"{API}/messages/{m}/reactions/👍", None),
        ("POST", f"{NOTIFICATIONS}/{n}/read", None),
    ]


async def _answer(
    http: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None
) -> tuple[int, str, str]:
    response = await http.request(method, path, json=body, headers=intruder())
    return response.status_code, response.headers.get("content-type", ""), response.text


async def test_another_tenants_resources_answer_exactly_like_missing_ones(
    tmp_path: Path, unit: float, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with open_room(tmp_path, unit) as room:
        ids = await _acme_world(room)
        before = await room.json(ALICE, "GET", f"/channels/{ids['channel']}/messages")
        missing = {key: str(uuid.uuid4()) for key in ids}
        for (method, path, body), (_, missing_path, _) in zip(
            _requests(ids), _requests(missing), strict=True
        ):
            real = await _answer(room.http, method, path, body)
            absent = await _answer(room.http, method, missing_path, body)
            assert real[0] == 404, (method, path, real)
            # same status, type and body: nothing tells the intruder the id exists
            for key in ids:
                absent = (absent[0], absent[1], absent[2].replace(missing[key], ids[key]))
            assert real == absent, (method, path)

        # nothing changed for acme: the channel is there, the messages are as they were
        assert (await room.call(ALICE, "GET", f"/channels/{ids['channel']}")).status_code == 200
        after = await room.json(ALICE, "GET", f"/channels/{ids['channel']}/messages")
        assert after == before
        unread = await room.http.get(f"{NOTIFICATIONS}/unread-count", headers=acme(ALICE))
        assert unread.json() == {"count": 1}
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_another_tenants_listings_and_search_show_nothing_of_acme(
    tmp_path: Path, unit: float
) -> None:
    async with open_room(tmp_path, unit) as room:
        ids = await _acme_world(room)
        for path in (
            f"{API}/channels",
            f"{API}/channels/discover",
            f"{API}/channels/discover?search=general",
            f"{API}/search?q=secret",
            NOTIFICATIONS,
        ):
            response = await room.http.get(path, headers=intruder())
            assert response.status_code == 200, (path, response.text)
            assert response.json() == [], path
        scoped = await room.http.get(
            f"{API}/search", params={"q": "secret", "channelId": ids["channel"]}, headers=intruder()
        )
        assert scoped.status_code in (200, 404)
        assert "secret" not in scoped.text
        count = await room.http.get(f"{NOTIFICATIONS}/unread-count", headers=intruder())
        assert count.json() == {"count": 0}


async def test_another_tenants_connection_cannot_join_or_hear_acme(
    tmp_path: Path, unit: float
) -> None:
    """A globex connection asks to join acme's channel and dashboard groups: refused or a
    no-op. acme's traffic then reaches acme only, and globex's reaches globex only."""
    carol_of_globex = CAROL  # a user id acme does not use in this test
    async with open_room(tmp_path, unit) as room:
        channel = await room.channel(ALICE, "general", BOB)
        alice = await room.connect(ALICE)
        spy = await room.connect(carol_of_globex, OTHER)

        await spy.client.invoke("JoinChannel", channel)  # not a member: a silent no-op
        with pytest.raises(HubInvocationError, match="Not allowed"):
            await spy.client.invoke("JoinGroup", "dashboard:acme:main")
        for reserved in (
            f"channel:{channel}",
            f"user:{ALICE}",
            f"user:acme:{ALICE}",
            "tenant:acme",
        ):
            with pytest.raises(HubInvocationError, match="reserved"):
                await spy.client.invoke("JoinGroup", reserved)

        await room.json(ALICE, "POST", f"/channels/{channel}/messages", body="acme news")
        globex_room = await room.channel(carol_of_globex, "globex general", tenant=OTHER)
        await room.json(
            carol_of_globex,
            "POST",
            f"/channels/{globex_room}/messages",
            tenant=OTHER,
            body="globex news",
        )

        heard_by_spy = await spy.fence()
        heard_by_alice = await alice.fence()
        assert all("acme news" not in str(payload) for _, payload in heard_by_spy), heard_by_spy
        assert all("globex news" not in str(p) for _, p in heard_by_alice), heard_by_alice
        created = [p["body"] for t, p in heard_by_alice if t == Events.CHAT_MESSAGE_CREATED]
        assert created == ["acme news"]


async def test_the_same_user_id_in_another_tenant_hears_nothing_of_acme(
    tmp_path: Path, unit: float
) -> None:
    async with open_room(tmp_path, unit) as room:
        twin = await room.connect(ALICE, OTHER)
        await _acme_world(room)
        heard = await twin.fence()
        assert heard == [], heard
