"""Mentions: `@name` resolved through the UserLookup, notified in the message's unit of work."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Collection
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from hero.auth import mint_token
from hero.data import UnitOfWork
from hero.platform.app import create_app
from hero.platform.settings import load_settings
from hero.realtime.testing import lifespan

KEY = "chat-mentions-signing-key-0123456789abcdef"
ALICE, BOB, CAROL = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


class Directory:
    """A fixed directory of display names (the real one learns them from tokens)."""

    async def resolve_names(
        self, work: UnitOfWork, tenant_id: str, names: Collection[str]
    ) -> dict[str, uuid.UUID]:
        known = {"alice": ALICE, "bob": BOB, "carol": CAROL}
        return {n: known[n] for n in names if n in known}


class Recorder:
    """Keeps the notifications it is given, with the unit of work they arrived in."""

    def __init__(self) -> None:
        self.seen: list[tuple[uuid.UUID, dict[str, Any]]] = []

    async def notify(
        self, work: UnitOfWork, tenant_id: str, user_id: uuid.UUID, **fields: Any
    ) -> None:
        assert work.session.in_transaction()
        self.seen.append((user_id, fields))


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Recorder]]:
    settings = load_settings(
        None,
        {
            "JwtOptions__SigningKey": KEY,
            "DatabaseOptions__ConnectionString": f"sqlite+aiosqlite:///{tmp_path / 'm.db'}",
        },
    )
    recorder = Recorder()
    app: FastAPI = create_app(settings, users=Directory(), notifications=recorder)  # type: ignore[assignment]
    async with lifespan(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hero") as http:
            yield http, recorder


def auth(user: uuid.UUID) -> dict[str, str]:
    token = mint_token(KEY, "hero.local", "hero.clients", user, tenant="acme")
    return {"Authorization": f"Bearer {token}"}


async def test_mentions_of_members_notify_them_and_drop_self(
    setup: tuple[httpx.AsyncClient, Recorder],
) -> None:
    http, recorder = setup
    created = await http.post(
        "/api/v1/chat/channels", json={"name": "m", "isPrivate": False}, headers=auth(ALICE)
    )
    cid = created.json()["id"]
    await http.post(f"/api/v1/chat/channels/{cid}/join", headers=auth(BOB))
    sent = await http.post(
        f"/api/v1/chat/channels/{cid}/messages",
        json={"body": "hi @Bob and @alice and @carol and @nobody"},
        headers=auth(ALICE),
    )
    assert sent.json()["mentions"] == [str(BOB)]
    assert [(user, fields["type"]) for user, fields in recorder.seen] == [(BOB, "chat.mention")]


async def test_openapi_and_docs(setup: tuple[httpx.AsyncClient, Recorder]) -> None:
    http, _ = setup
    document = (await http.get("/openapi.json")).json()
    assert "/api/v1/chat/channels/{channel_id}/messages" in document["paths"]
    assert not any(path.startswith(("/realtime", "/health")) for path in document["paths"])
    assert (await http.get("/docs")).status_code == 200
