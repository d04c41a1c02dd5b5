"""`Http:MaxRequestBodySize`: REST bodies past the limit are a 413 problem, whether the
client declares a Content-Length or streams the body chunked; everything else is untouched."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from hero.auth import mint_token
from hero.platform.app import create_app
from hero.platform.body_limit import BodyLimitMiddleware
from hero.platform.settings import load_settings
from hero.platform.web import problem_type
from hero.realtime.testing import lifespan
from tests.app.test_chat_api import KEY

LIMIT = 1024
ORIGIN = "https://app.example.com"
CHANNELS = "/api/v1/chat/channels"
AUTH = {"Authorization": "Bearer " + mint_token(KEY, "hero.local", "hero.clients", uuid.uuid4())}


async def client_for(tmp_path: Path, **env: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = load_settings(
        None,
        {
            "JwtOptions__SigningKey": KEY,
            "DatabaseOptions__ConnectionString": f"sqlite+aiosqlite:///{tmp_path / 'hero.db'}",
            "Cors__AllowedOrigins__0": ORIGIN,
            **env,
        },
    )
    app = create_app(settings)
    async with lifespan(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hero") as client:
            yield client


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for client in client_for(tmp_path, Http__MaxRequestBodySize=str(LIMIT)):
        yield client


def channel_body(size: int) -> bytes:
    """A valid POST /channels body of exactly `size` bytes."""
    empty = json.dumps({"name": "general", "description": ""}).encode()
    padded = json.dumps({"name": "general", "description": "x" * (size - len(empty))})
    assert len(padded.encode()) == size
    return padded.encode()


async def chunks(body: bytes, size: int = 100) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def assert_413(response: httpx.Response, limit: int = LIMIT) -> None:
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == problem_type(413) and body["status"] == 413
    assert body["title"] == "Content Too Large"
    assert str(limit) in body["detail"]


async def channel_count(http: httpx.AsyncClient) -> int:
    return len((await http.get(CHANNELS, headers=AUTH)).json())


async def test_declared_length_over_the_limit_is_413_before_the_app_runs(
    http: httpx.AsyncClient,
) -> None:
    headers = {**AUTH, "Content-Type": "application/json", "Origin": ORIGIN}
    response = await http.post(CHANNELS, content=channel_body(LIMIT + 1), headers=headers)
    assert_413(response)
    assert response.headers["access-control-allow-origin"] == ORIGIN  # readable by the page
    assert await channel_count(http) == 0
    at_limit = await http.post(CHANNELS, content=channel_body(LIMIT), headers=headers)
    assert at_limit.status_code == 201, at_limit.text


async def test_chunked_body_over_the_limit_is_413(http: httpx.AsyncClient) -> None:
    headers = {**AUTH, "Content-Type": "application/json"}
    request = http.build_request(
        "POST", CHANNELS, content=chunks(channel_body(LIMIT + 1)), headers=headers
    )
    assert "content-length" not in request.headers
    assert request.headers["transfer-encoding"] == "chunked"
    assert_413(await http.send(request))
    assert await channel_count(http) == 0
    small = await http.post(CHANNELS, content=chunks(channel_body(LIMIT)), headers=headers)
    assert small.status_code == 201, small.text
    assert await channel_count(http) == 1


async def test_hub_endpoints_and_other_paths_are_not_limited(http: httpx.AsyncClient) -> None:
    big = b"x" * (LIMIT * 4)
    for hub in ("/realtime/hub", "/api/v1/realtime/hub"):
        negotiate = await http.post(
            f"{hub}/negotiate?negotiateVersion=1", content=big, headers=AUTH
        )
        assert negotiate.status_code == 200, negotiate.text
    assert (await http.post("/health/live", content=big)).status_code == 405
    assert (await http.get(CHANNELS, headers=AUTH)).status_code == 200


async def test_the_default_limit_is_one_mebibyte(tmp_path: Path) -> None:
    async for http in client_for(tmp_path):
        headers = {**AUTH, "Content-Type": "application/json"}
        over = await http.post(CHANNELS, content=channel_body(2**20 + 1), headers=headers)
        assert_413(over, 2**20)
        # the channel DTO limits the description; a 400 means the body got through
        under = await http.post(CHANNELS, content=channel_body(2**20), headers=headers)
        assert under.status_code == 400 and under.json()["field"] == "description"


async def test_an_app_that_reads_the_stream_itself_gets_the_413_too() -> None:
    async def echo(scope: Scope, receive: Receive, send: Send) -> None:
        size, more = 0, True
        while more:
            message = await receive()
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})

    limited = BodyLimitMiddleware(echo, limit=10, prefixes=("/api/",), exempt=("/api/hub",))
    transport = httpx.ASGITransport(limited)
    async with httpx.AsyncClient(transport=transport, base_url="http://hero") as client:
        assert_413(await client.post("/api/x", content=chunks(b"y" * 11, 3)), 10)
        assert (await client.post("/api/x", content=chunks(b"y" * 10, 3))).text == "10"
        assert (await client.post("/api/hub/send", content=b"y" * 11)).text == "11"
        assert (await client.post("/api/hubs", content=b"y" * 11)).status_code == 413
        assert (await client.post("/other", content=b"y" * 11)).text == "11"
