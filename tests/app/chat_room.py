"""A chat room for the event tests: the whole platform in process (SQLite in a temporary
folder), four users of one tenant, and hub connections that record every event they get.

Absence is proven with fences, never with sleeps. Every user owns a private "notes"
channel; `Watch.fence()` posts a fresh message there as that user and waits for it. In
process the outbox hands a command's events to the hub before the HTTP response returns,
and one connection receives its messages in the order the hub queued them, so whatever an
earlier request sent to a connection has arrived before its fence. `fence()` returns exactly
what arrived since the previous fence (fence messages themselves left out).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator, Collection, Mapping
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
from sqlalchemy import select

from hero.auth import mint_token
from hero.conventions import Events, channel_group
from hero.data import OutboxEvent
from hero.platform.app import create_app
from hero.platform.settings import load_settings
from hero.realtime.testing import HubTestClient, lifespan

KEY = "chat-events-signing-key-0123456789abcdef"
API = "/api/v1/chat"
ALICE, BOB, CAROL, DAVE = (uuid.uuid4() for _ in range(4))
NAMES = {ALICE: "alice", BOB: "bob", CAROL: "carol", DAVE: "dave"}
TARGETS = [
    value
    for name, value in vars(Events).items()
    if name.isupper() and value != Events.PRESENCE_CHANGED
]
"""Every event the server sends, except presence (tenant-wide and not a chat event)."""

Event = tuple[str, Any]
_fences = itertools.count()


def token(user: UUID, tenant: str = "acme") -> str:
    return mint_token(KEY, "hero.local", "hero.clients", user, name=NAMES.get(user), tenant=tenant)


class Watch:
    """One live hub connection of one user, recording (target, payload) in arrival order."""

    def __init__(self, room: Room, user: UUID, tenant: str, client: HubTestClient) -> None:
        self.room, self.user, self.tenant, self.client = room, user, tenant, client
        self.seen: list[Event] = []
        self._cursor = 0
        self._arrived = asyncio.Event()
        for target in TARGETS:
            client.on(target, lambda *args, t=target: self._record(t, args))

    def _record(self, target: str, args: tuple[Any, ...]) -> None:
        assert len(args) == 1, (target, args)
        (payload,) = args
        if target == Events.CHAT_MESSAGE_CREATED and payload["channelId"] in self.room.fence_ids:
            self.seen.append(("fence", payload["body"]))
        else:
            self.seen.append((target, payload))
        self._arrived.set()

    async def fence(self) -> list[Event]:
        """What this connection received since the last fence, proven complete."""
        body = f"fence {next(_fences)}"
        notes = self.room.notes[self.user, self.tenant]
        path = f"/channels/{notes}/messages"
        await self.room.call(self.user, "POST", path, 201, tenant=self.tenant, body=body)
        marker = ("fence", body)
        async with asyncio.timeout(self.room.wait):
            while marker not in self.seen[self._cursor :]:
                self._arrived.clear()
                await self._arrived.wait()
        end = self.seen.index(marker, self._cursor)
        window = self.seen[self._cursor : end]
        self._cursor = end + 1
        return [event for event in window if event[0] != "fence"]


class Room:
    """The app, an HTTP client and the users' notes channels; opens hub connections."""

    def __init__(self, app: Any, http: httpx.AsyncClient, unit: float) -> None:
        self.app, self.http, self.unit = app, http, unit
        self.wait = 5 * unit
        self.notes: dict[tuple[UUID, str], str] = {}
        self.stack = contextlib.AsyncExitStack()

    @property
    def fence_ids(self) -> set[str]:
        return set(self.notes.values())

    async def call(
        self,
        user: UUID,
        method: str,
        path: str,
        status: int | None = None,
        *,
        tenant: str = "acme",
        **body: Any,
    ) -> httpx.Response:
        """One REST call as `user` of `tenant`; `status`, when given, is asserted."""
        response = await self.http.request(
            method,
            API + path,
            json=body or None,
            headers={"Authorization": f"Bearer {token(user, tenant)}"},
        )
        if status is not None:
            assert response.status_code == status, response.text
        return response

    async def json(
        self, user: UUID, method: str, path: str, *, tenant: str = "acme", **body: Any
    ) -> Any:
        """A REST call that must succeed (2xx), returning its JSON body."""
        response = await self.call(user, method, path, tenant=tenant, **body)
        assert response.is_success, response.text
        return response.json()

    async def published(self, channel: str) -> list[str]:
        """The targets the outbox holds for the stream of `channel`, in commit order:
        what the chat module published, however often delivery repeats it."""
        query = (
            select(OutboxEvent.payload)
            .where(OutboxEvent.stream == channel_group(channel))
            .order_by(OutboxEvent.seq)
        )
        async with self.app.state.platform.database.sessions() as session:
            rows = (await session.scalars(query)).all()
        return [row["target"] for row in rows if row.get("op") == "send"]

    async def channel(
        self, admin: UUID, name: str, *members: UUID, private: bool = False, tenant: str = "acme"
    ) -> str:
        body = {"name": name, "isPrivate": private}
        created = await self.json(admin, "POST", "/channels", tenant=tenant, **body)
        if members:
            user_ids = [str(m) for m in members]
            await self.json(admin, "POST", f"/channels/{created['id']}/members", userIds=user_ids)
        return str(created["id"])

    async def connect(self, user: UUID, tenant: str = "acme") -> Watch:
        """A new hub connection for `user` of `tenant` (closed with the room)."""
        if (user, tenant) not in self.notes:
            name = f"notes of {NAMES[user]}"
            notes = await self.channel(user, name, private=True, tenant=tenant)
            self.notes[user, tenant] = notes
        client = HubTestClient(
            self.app,
            "/realtime/hub",
            transport="LongPolling",
            access_token=token(user, tenant),
            timeout=10 * self.unit,
        )
        watch = Watch(self, user, tenant, client)
        await self.stack.enter_async_context(client)
        return watch


@contextlib.asynccontextmanager
async def open_room(folder: Path, unit: float) -> AsyncIterator[Room]:
    settings = load_settings(
        None,
        {
            "JwtOptions__SigningKey": KEY,
            "DatabaseOptions__ConnectionString": f"sqlite+aiosqlite:///{folder / 'events.db'}",
        },
    )
    app = create_app(settings)
    async with lifespan(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hero") as http:
            room = Room(app, http, unit)
            async with room.stack:
                yield room


class Cast:
    """The usual scene: `general` holds alice (admin) and bob, `random` holds carol (admin)
    and dave; each of the four has one live connection. `connect` opens more."""

    def __init__(self, room: Room, general: str, random: str) -> None:
        self.room, self.general, self.random = room, general, random
        self.everyone: list[Watch] = []

    async def connect(self, user: UUID, tenant: str = "acme") -> Watch:
        watch = await self.room.connect(user, tenant)
        self.everyone.append(watch)
        return watch

    async def expect_each(self, heard: Mapping[Watch, list[Event]]) -> None:
        """Each connection received exactly `heard[it]` since its last fence, in order;
        every other connection received nothing at all."""
        for watch in self.everyone:
            got = await watch.fence()
            assert got == heard.get(watch, []), f"{NAMES[watch.user]}: {got}"

    async def expect(self, *events: Event, to: Collection[Watch]) -> None:
        """The connections `to` received exactly `events`; the others nothing."""
        await self.expect_each({watch: list(events) for watch in to})


@contextlib.asynccontextmanager
async def open_cast(folder: Path, unit: float) -> AsyncIterator[tuple[Cast, list[Watch]]]:
    """A Cast and the connections of alice, bob, carol and dave (in that order)."""
    async with open_room(folder, unit) as room:
        general = await room.channel(ALICE, "general", BOB)
        random = await room.channel(CAROL, "random", DAVE)
        cast = Cast(room, general, random)
        watches = [await cast.connect(user) for user in (ALICE, BOB, CAROL, DAVE)]
        yield cast, watches
