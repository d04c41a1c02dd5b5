"""PlatformApp serves hub paths before FastAPI's stack (`hero.platform.front_door`): hub
requests pass only credentialed CORS and the connect rate limit, every other request the
whole REST stack, as before."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from hero.platform.app import create_app
from hero.platform.front_door import PlatformApp
from tests.app.test_platform_http import ALLOWED, _settings, _token


class Seen:
    """A REST-stack middleware that records the paths it was given."""

    paths: list[str]

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            Seen.paths.append(scope["path"])
        await self.app(scope, receive, send)


@pytest.fixture
async def app() -> AsyncIterator[PlatformApp]:
    built = create_app(_settings())
    assert isinstance(built, PlatformApp)
    Seen.paths = []
    built.add_middleware(Seen)
    try:
        yield built
    finally:
        await built.state.platform.database.aclose()


async def _client(app: PlatformApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_hub_requests_skip_the_rest_stack(app: PlatformApp) -> None:
    auth = {"Authorization": f"Bearer {_token()}", "Origin": ALLOWED}
    async with await _client(app) as client:
        for path in ("/realtime/hub", "/api/v1/realtime/hub", "/REALTIME/Hub"):
            response = await client.post(f"{path}/negotiate?negotiateVersion=1", headers=auth)
            assert response.status_code == 200, response.text
            assert response.headers["access-control-allow-origin"] == ALLOWED
        # A hub request without a token is the hub's own 401.
        refused = await client.post("/realtime/hub/negotiate?negotiateVersion=1")
        assert refused.status_code == 401
        assert Seen.paths == []
        # Everything else still goes through FastAPI's stack.
        live = await client.get("/health/live")
        near = await client.post("/realtime/hubs/negotiate", headers=auth)
    assert live.status_code == 200
    assert near.status_code == 404
    assert near.headers["content-type"] == "application/problem+json"
    assert Seen.paths == ["/health/live", "/realtime/hubs/negotiate"]


async def test_without_the_hub_everything_goes_through_fastapi() -> None:
    built = create_app(_settings(Realtime__Enabled="false"))
    assert isinstance(built, PlatformApp)
    Seen.paths = []
    built.add_middleware(Seen)
    try:
        async with await _client(built) as client:
            response = await client.post("/realtime/hub/negotiate")
        assert response.status_code == 404
        assert Seen.paths == ["/realtime/hub/negotiate"]
    finally:
        await built.state.platform.database.aclose()
