"""Notifications end to end on two `hero serve` instances (one Valkey, one PostgreSQL), over
real HTTP: the REST rules, the Server-Sent Events stream across instances, `Last-Event-ID`
replay of exactly what was missed, and mentions creating `chat.mention` notifications."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy import text

from hero.data import Database
from tests.integration.platform_app import mint
from tests.integration.test_chat_cluster import (  # the same two-instance cluster
    Person,
    cluster,
    create_channel,
    http,
    people,
    post,
)
from tests.support.servers import UNIT, RunningServer

__all__ = ["cluster", "http"]  # fixtures used here
pytest_plugins = ("tests.support.postgres", "tests.support.valkey_fixtures")

BASE = "/api/v1/notifications"


def admin_headers(tenant: str) -> dict[str, str]:
    token = mint(uuid.uuid4(), tenant=tenant, name="admin", roles=["admin"])
    return {"Authorization": f"Bearer {token}"}


class EventStream:
    """One open `GET /notifications`: parsed events, read as they come."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()

    async def next_event(self) -> dict[str, Any]:
        fields: dict[str, str] = {}
        async with asyncio.timeout(15 * UNIT):
            async for line in self._lines:
                if line == "":
                    if "data" in fields:
                        return {
                            "id": fields.get("id"),
                            "event": fields.get("event"),
                            "data": json.loads(fields["data"]),
                        }
                    fields = {}
                    continue
                if line.startswith(":"):
                    continue
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
        raise AssertionError("the stream ended")


@asynccontextmanager
async def event_stream(
    server: RunningServer, person: Person, last_event_id: str | None = None
) -> AsyncIterator[EventStream]:
    headers = person.headers()
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    timeout = httpx.Timeout(10 * UNIT, read=30 * UNIT)
    url = f"{server.base_url}/notifications"
    async with (
        httpx.AsyncClient(timeout=timeout) as client,
        client.stream("GET", url, headers=headers) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        yield EventStream(response)


async def create(http: httpx.AsyncClient, server: RunningServer, to: Person, title: str) -> str:
    response = await http.post(
        f"{server.base_url}{BASE}",
        json={"userId": to.uid, "type": "test", "title": title},
        headers=admin_headers(to.tenant),
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_sse_across_instances_and_last_event_id_replay(
    cluster: tuple[RunningServer, RunningServer], http: httpx.AsyncClient
) -> None:
    first, second = cluster
    (reader,) = people(1)
    async with event_stream(second, reader) as stream:
        seen = await create(http, first, reader, "one")
        event = await stream.next_event()
        assert (event["id"], event["event"]) == (seen, "NotificationCreated")
        assert event["data"]["title"] == "one"
        assert event["data"]["readAtUtc"] is None
    missed = [await create(http, first, reader, f"missed {n}") for n in range(3)]
    async with event_stream(second, reader, last_event_id=seen) as stream:
        replayed = [(await stream.next_event())["id"] for _ in missed]
        assert replayed == missed
        live = await create(http, first, reader, "live")
        assert (await stream.next_event())["id"] == live


async def test_rest_rules(
    cluster: tuple[RunningServer, RunningServer], http: httpx.AsyncClient
) -> None:
    first, _ = cluster
    me, other = people(2)
    url = f"{first.base_url}{BASE}"
    forbidden = await http.post(
        url, json={"userId": me.uid, "type": "t", "title": "x"}, headers=me.headers()
    )
    assert forbidden.status_code == 403
    assert forbidden.headers["content-type"].startswith("application/problem+json")
    bad = await http.post(
        url, json={"userId": "nope", "type": "t", "title": "x"}, headers=admin_headers(me.tenant)
    )
    assert bad.status_code == 400
    ids = [await create(http, first, me, f"n{n}") for n in range(3)]
    other_id = await create(http, first, other, "theirs")
    listed = (await http.get(url, headers=me.headers())).json()
    assert [n["id"] for n in listed] == list(reversed(ids))
    count = await http.get(f"{url}/unread-count", headers=me.headers())
    assert count.json() == {"count": 3}
    for _ in range(2):  # idempotent
        read = await http.post(f"{url}/{ids[0]}/read", headers=me.headers())
        assert read.status_code == 204
    assert (await http.post(f"{url}/{other_id}/read", headers=me.headers())).status_code == 404
    unread = (await http.get(url, params={"unreadOnly": "true"}, headers=me.headers())).json()
    assert [n["id"] for n in unread] == [ids[2], ids[1]]
    assert (await http.post(f"{url}/read-all", headers=me.headers())).json() == {"updated": 2}
    assert (await http.get(f"{url}/unread-count", headers=me.headers())).json() == {"count": 0}
    assert (await http.get(url, headers={})).status_code == 401


async def test_a_mention_notifies_the_mentioned_member(
    cluster: tuple[RunningServer, RunningServer], http: httpx.AsyncClient
) -> None:
    first, second = cluster
    author, mentioned = people(2)
    # The directory learns names from tokens it sees.
    assert (
        await http.get(f"{second.base_url}{BASE}", headers=mentioned.headers())
    ).status_code == 200
    channel = await create_channel(http, first, author, [mentioned])
    async with event_stream(second, mentioned) as stream:
        message = await post(
            http, first, author, channel, f"hi @{mentioned.name} and @{author.name}"
        )
        event = await stream.next_event()
    assert event["data"]["type"] == "chat.mention"
    assert message["mentions"] == [mentioned.uid]
    mine = (await http.get(f"{first.base_url}{BASE}", headers=author.headers())).json()
    assert mine == []  # self-mentions are dropped


async def test_last_event_id_replays_in_commit_order_whatever_clock_minted_the_ids(
    cluster: tuple[RunningServer, RunningServer], http: httpx.AsyncClient, postgres_url: str
) -> None:
    """A notification committed after the one a client saw, but whose UUIDv7 came from a
    clock a minute behind (here rewritten in the database so), is still replayed."""
    first, second = cluster
    (reader,) = people(1)
    seen = await create(http, first, reader, "seen")
    late = await create(http, second, reader, "late")
    behind = uuid7_before(uuid.UUID(seen), milliseconds=60_000)
    database = Database(postgres_url)
    try:
        async with database.engine.begin() as connection:
            await connection.execute(
                text("UPDATE notifications SET id = :behind WHERE id = :late"),
                {"behind": behind, "late": uuid.UUID(late)},
            )
    finally:
        await database.aclose()
    async with event_stream(first, reader, last_event_id=seen) as stream:
        event = await stream.next_event()
        assert (event["id"], event["data"]["title"]) == (str(behind), "late")
        live = await create(http, second, reader, "live")
        assert (await stream.next_event())["id"] == live


def uuid7_before(reference: uuid.UUID, *, milliseconds: int) -> uuid.UUID:
    """A UUIDv7 whose timestamp is `milliseconds` before `reference`'s, random in the rest."""
    stamp = (reference.int >> 80) - milliseconds
    value = (stamp << 80) | (0x7 << 76) | (uuid.uuid4().int & ((1 << 62) - 1))
    return uuid.UUID(int=value | (0b10 << 62))
