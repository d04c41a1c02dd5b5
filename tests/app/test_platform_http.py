"""The platform's HTTP surface in-process: auth rules, problem+json, CORS, health, metrics."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from hero.auth import mint_token
from hero.platform.app import create_app
from hero.platform.settings import Settings, load_settings
from tests.support.valkey import free_port

KEY = "unit-test-signing-key-0123456789abcdef"
ALLOWED = "https://app.example.com"
MEMORY_DB = "sqlite+aiosqlite:///:memory:"


def _settings(**env: str) -> Settings:
    base = {
        "JwtOptions__SigningKey": KEY,
        "Cors__AllowedOrigins__0": ALLOWED,
        "DatabaseOptions__ConnectionString": MEMORY_DB,
    }
    base.update(env)
    return load_settings(None, base)


def _token(user: uuid.UUID | None = None) -> str:
    return mint_token(KEY, "hero.local", "hero.clients", user or uuid.uuid4())


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(_settings())
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c
    finally:
        # Close the pooled SQLite connection in this test's loop: left to the garbage
        # collector, its worker thread reports to a closed loop during a later test.
        await app.state.platform.database.aclose()


async def test_negotiate_without_token_is_401_problem_json(client: httpx.AsyncClient) -> None:
    response = await client.post("/realtime/hub/negotiate?negotiateVersion=1")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 401


@pytest.mark.parametrize("path", ["/realtime/hub", "/api/v1/realtime/hub"])
async def test_negotiate_accepts_header_and_hub_query_token(
    client: httpx.AsyncClient, path: str
) -> None:
    token = _token()
    by_header = await client.post(
        f"{path}/negotiate?negotiateVersion=1", headers={"Authorization": f"Bearer {token}"}
    )
    by_query = await client.post(f"{path}/negotiate?negotiateVersion=1&access_token={token}")
    assert by_header.status_code == 200
    assert by_query.status_code == 200
    assert by_query.json()["negotiateVersion"] == 1


async def test_query_token_is_ignored_outside_hub_and_notifications(
    client: httpx.AsyncClient,
) -> None:
    token = _token()
    user = str(uuid.uuid4())
    ignored = await client.get(f"/api/v1/realtime/presence?userIds={user}&access_token={token}")
    assert ignored.status_code == 401
    assert ignored.headers["content-type"] == "application/problem+json"
    ok = await client.get(
        f"/api/v1/realtime/presence?userIds={user}", headers={"Authorization": f"Bearer {token}"}
    )
    assert ok.status_code == 200
    assert ok.json() == [{"userId": user, "online": False}]


async def test_nil_user_id_token_is_refused(client: httpx.AsyncClient) -> None:
    token = _token(uuid.UUID(int=0))
    response = await client.post(
        "/realtime/hub/negotiate", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401


async def test_cors_preflight_from_allowed_origin_echoes_it_with_credentials(
    client: httpx.AsyncClient,
) -> None:
    response = await client.options(
        "/realtime/hub/negotiate",
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-requested-with,x-signalr-user-agent,authorization",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "DELETE" in response.headers["access-control-allow-methods"]
    assert "x-signalr-user-agent" in response.headers["access-control-allow-headers"]


async def test_cors_from_foreign_origin_gets_no_cors_headers(client: httpx.AsyncClient) -> None:
    preflight = await client.options(
        "/realtime/hub/negotiate",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    simple = await client.get("/health/live", headers={"Origin": "https://evil.example"})
    for response in (preflight, simple):
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]
    assert simple.status_code == 200


async def test_cors_allow_all_echoes_any_origin_never_a_wildcard() -> None:
    app = create_app(_settings(Cors__AllowAll="true"))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        response = await c.get("/health/live", headers={"Origin": "http://localhost:5173"})
    assert response.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert response.headers["access-control-allow-credentials"] == "true"


async def test_health_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health/live")).status_code == 200
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert ready.json()["checks"]["database"] == "ok"
    for name in (
        "hero_connections",
        "hero_messages_received_total",
        "hero_messages_sent_total",
        "hero_send_queue_drops_total",
        "hero_typing_throttle_hits_total",
    ):
        assert name in metrics.text


async def test_realtime_switches() -> None:
    for env, expected in (({"Realtime__Map": "false"}, 404), ({"Realtime__Enabled": "false"}, 404)):
        app = create_app(_settings(**env))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as c:
            response = await c.post(
                "/realtime/hub/negotiate", headers={"Authorization": f"Bearer {_token()}"}
            )
        assert response.status_code == expected


# ------------------------------------------------------------------ presence endpoint


def _bearer(token: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token or _token()}"}


@pytest.mark.parametrize(
    "ids",
    [
        "a",
        "not-a-uuid",
        f"sub:{uuid.uuid4()}",  # the key would be ...u:{tenant}:sub:{uuid}: tenant `...:sub`
        f"{uuid.uuid4()},x",
        f"{uuid.uuid4()}:x",
    ],
)
async def test_presence_user_ids_must_be_uuids(client: httpx.AsyncClient, ids: str) -> None:
    response = await client.get(
        "/api/v1/realtime/presence", params={"userIds": ids}, headers=_bearer()
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 400


async def test_presence_user_ids_are_normalised_to_lowercase_uuids(
    client: httpx.AsyncClient,
) -> None:
    user = uuid.uuid4()
    response = await client.get(
        "/api/v1/realtime/presence",
        params={"userIds": f" {str(user).upper()} ,{user.hex}"},
        headers=_bearer(),
    )
    assert response.status_code == 200
    assert response.json() == [{"userId": str(user), "online": False}] * 2


async def test_presence_sees_only_the_callers_tenant_even_with_a_crafted_id() -> None:
    app = create_app(_settings())
    platform = app.state.platform
    victim = uuid.uuid4()
    # A user of tenant "acme:sub" is online; a caller of tenant "acme" asks for "sub:{id}".
    await platform.presence.connected("acme:sub", victim, "victim-conn")
    token = mint_token(KEY, "hero.local", "hero.clients", uuid.uuid4(), tenant="acme")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        crafted = await c.get(
            "/api/v1/realtime/presence",
            params={"userIds": f"sub:{victim}"},
            headers=_bearer(token),
        )
        same_tenant = await c.get(
            "/api/v1/realtime/presence",
            params={"userIds": str(victim)},
            headers=_bearer(
                mint_token(KEY, "hero.local", "hero.clients", uuid.uuid4(), tenant="acme:sub")
            ),
        )
    assert crafted.status_code == 400
    assert same_tenant.json() == [{"userId": str(victim), "online": True}]


async def test_presence_is_503_problem_json_when_valkey_is_down() -> None:
    app = create_app(_settings(CachingOptions__Redis=f"127.0.0.1:{free_port()}"))
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as c:
            response = await c.get(
                "/api/v1/realtime/presence",
                params={"userIds": str(uuid.uuid4())},
                headers=_bearer(),
            )
    finally:
        await app.state.platform.valkey.aclose()
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 503


# ------------------------------------------------------------------ readiness


def _aiosqlite_workers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.endswith("(_connection_worker_thread)")}


def _join(threads: set[threading.Thread]) -> None:
    """aiosqlite ends the worker thread of a connection that failed to open without waiting
    for it: the thread then reports to the event loop, which must still be running (pytest
    closes it right after the test). Join those threads while it does."""
    for thread in threads:
        thread.join(timeout=10)
        assert not thread.is_alive(), thread.name


async def test_ready_shows_only_the_database_error_type(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "missing-dir" / "hero.db"
    before = _aiosqlite_workers()
    app = create_app(_settings(DatabaseOptions__ConnectionString=f"sqlite+aiosqlite:///{missing}"))
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        ) as c:
            response = await c.get("/health/ready")
    finally:
        await app.state.platform.database.aclose()
        await asyncio.to_thread(_join, _aiosqlite_workers() - before)
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "unavailable: OperationalError"
    assert "unable to open" not in response.text
    assert "unable to open" in caplog.text  # the details are logged


# ------------------------------------------------------------------ the platform's cache


async def test_the_platform_cache_is_unprefixed_so_contract_keys_are_exact() -> None:
    app = create_app(_settings(CachingOptions__Redis=f"127.0.0.1:{free_port()}"))
    try:
        assert app.state.platform.cache.key_prefix == ""
    finally:
        await app.state.platform.valkey.aclose()
