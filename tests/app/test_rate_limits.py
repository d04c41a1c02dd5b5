"""`RateLimiting:Rest`: REST requests per user (per address without a token) past the window
get a 429 problem with Retry-After; other users, other addresses, the hub endpoints and the
health and metrics routes are untouched. In-process, one app, clients at chosen addresses."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp

from hero.auth import mint_token
from hero.platform.app import create_app
from hero.platform.settings import load_settings
from hero.platform.web import problem_type
from hero.realtime.testing import lifespan
from tests.app.test_chat_api import KEY

LIMIT = 3
WINDOW = 600  # seconds: no window ends during a test
ORIGIN = "https://app.example.com"
CHANNELS = "/api/v1/chat/channels"
PRESENCE = "/api/v1/realtime/presence"

Client = Callable[[str], httpx.AsyncClient]


def bearer(user: uuid.UUID) -> dict[str, str]:
    return {"Authorization": "Bearer " + mint_token(KEY, "hero.local", "hero.clients", user)}


@asynccontextmanager
async def clients_for(tmp_path: Path, **env: str) -> AsyncIterator[tuple[ASGIApp, Client]]:
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
    async with lifespan(app), AsyncExitStack() as stack:

        def client(address: str) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app, client=(address, 40000))
            http = httpx.AsyncClient(transport=transport, base_url="http://hero")
            stack.push_async_callback(http.aclose)
            return http

        yield app, client


@pytest.fixture
async def limited(tmp_path: Path) -> AsyncIterator[Client]:
    env = {
        "RateLimiting__Rest__PermitLimit": str(LIMIT),
        "RateLimiting__Rest__WindowSeconds": str(WINDOW),
    }
    async with clients_for(tmp_path, **env) as (_, client):
        yield client


def assert_429(response: httpx.Response) -> int:
    """The documented refusal; returns Retry-After."""
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"] == problem_type(429)
    assert body["title"] == "Too Many Requests"
    assert body["status"] == 429
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= WINDOW
    assert f"retry after {retry_after} s" in body["detail"]
    return retry_after


def rejections(metrics_text: str, limit: str) -> float:
    match = re.search(
        rf'^hero_rate_limit_rejections_total\{{limit="{limit}"\}} (\S+)$', metrics_text, re.M
    )
    assert match, metrics_text
    return float(match.group(1))


async def test_a_user_past_the_window_gets_429_and_another_user_keeps_working(
    limited: Client,
) -> None:
    flooder, steady = bearer(uuid.uuid4()), bearer(uuid.uuid4())
    alice = limited("198.51.100.1")
    bob = limited("198.51.100.2")
    assert (await bob.get(CHANNELS, headers=steady)).status_code == 200
    for _ in range(LIMIT):
        assert (await alice.get(CHANNELS, headers=flooder)).status_code == 200
    assert_429(await alice.get(CHANNELS, headers=flooder))
    assert_429(await alice.post(CHANNELS, headers=flooder, json={"name": "flood"}))
    # per user, not per address: the same token from elsewhere is still limited, and
    # another user at the flooder's own address is not
    assert_429(await limited("198.51.100.3").get(CHANNELS, headers=flooder))
    assert (await alice.get(CHANNELS, headers=bearer(uuid.uuid4()))).status_code == 200
    for _ in range(LIMIT - 1):
        assert (await bob.get(CHANNELS, headers=steady)).status_code == 200

    metrics = (await bob.get("/metrics")).text
    assert rejections(metrics, "rest") == 3
    assert 'hero_rate_limit_tracked_clients{limit="rest"} 3.0' in metrics


async def test_requests_without_a_token_count_per_address(limited: Client) -> None:
    stranger, neighbour = limited("203.0.113.5"), limited("203.0.113.6")
    for _ in range(LIMIT):
        assert (await stranger.get(CHANNELS)).status_code == 401
    assert_429(await stranger.get(CHANNELS))
    assert (await neighbour.get(CHANNELS)).status_code == 401
    # a token makes it a user's request, with the user's own window
    assert (await stranger.get(CHANNELS, headers=bearer(uuid.uuid4()))).status_code == 200


async def test_hub_health_and_metrics_are_not_rest_requests(limited: Client) -> None:
    http = limited("192.0.2.10")
    user = bearer(uuid.uuid4())
    for _ in range(LIMIT):
        assert (await http.get(PRESENCE, headers=user, params={"userIds": ""})).status_code == 200
    assert_429(await http.get(PRESENCE, headers=user, params={"userIds": ""}))
    for _ in range(2 * LIMIT):
        negotiate = await http.post(
            "/api/v1/realtime/hub/negotiate?negotiateVersion=1", headers=user
        )
        assert negotiate.status_code == 200, negotiate.text
        assert (await http.get("/health/live")).status_code == 200
        assert (await http.get("/metrics")).status_code == 200


async def test_a_browser_can_read_the_429_and_its_retry_after(limited: Client) -> None:
    http = limited("192.0.2.20")
    headers = {**bearer(uuid.uuid4()), "Origin": ORIGIN}
    for _ in range(LIMIT):
        await http.get(CHANNELS, headers=headers)
    refused = await http.get(CHANNELS, headers=headers)
    assert_429(refused)
    assert refused.headers["access-control-allow-origin"] == ORIGIN
    assert refused.headers["access-control-expose-headers"] == "Retry-After"


async def test_disabled_rate_limiting_lets_every_request_through(tmp_path: Path) -> None:
    env = {"RateLimiting__Enabled": "false", "RateLimiting__Rest__PermitLimit": "1"}
    async with clients_for(tmp_path, **env) as (_, client):
        http = client("192.0.2.30")
        user = bearer(uuid.uuid4())
        for _ in range(5):
            assert (await http.get(CHANNELS, headers=user)).status_code == 200
        metrics = (await http.get("/metrics")).text
        assert 'limit="rest"' not in metrics
        assert rejections(metrics, "user_connections") == 0
