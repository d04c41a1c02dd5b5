"""The demo page's server side: sign-in only in Development, files, the vendor builds."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from hero.auth import JwtValidator
from hero.platform.app import create_app
from hero.platform.demo import DEMO_TENANT, DEMO_USERS
from hero.platform.settings import Settings, load_settings

KEY = "unit-test-signing-key-0123456789abcdef"


def _settings(environment: str) -> Settings:
    return load_settings(
        None,
        {
            "JwtOptions__SigningKey": KEY,
            "DatabaseOptions__ConnectionString": "sqlite+aiosqlite:///:memory:",
            "Environment": environment,
        },
    )


@pytest.fixture(params=["Development", "Production"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(_settings(request.param))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            c.headers["X-Environment"] = request.param  # for the test's own reading
            yield c
    finally:
        await app.state.platform.database.aclose()


def _production(client: httpx.AsyncClient) -> bool:
    return client.headers["X-Environment"] == "Production"


async def test_the_page_and_its_files_are_served(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "/demo/vendor/signalr.min.js" in page.text
    for name, kind in (("demo.js", "text/javascript"), ("demo.css", "text/css")):
        response = await client.get(f"/demo/{name}")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(kind)
    missing = await client.get("/demo/secrets.txt")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


async def test_the_official_browser_build_is_served_from_the_npm_package(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/demo/vendor/signalr.min.js")
    assert response.status_code == 200, "run scripts/setup (npm ci in web/)"
    assert "HubConnectionBuilder" in response.text
    assert (await client.get("/demo/vendor/../../pyproject.toml")).status_code == 404


async def test_sign_in_mints_demo_tokens_only_in_development(client: httpx.AsyncClient) -> None:
    config = (await client.get("/demo/config")).json()
    response = await client.post("/demo/token", json={"login": "bob"})
    if _production(client):
        assert config["signIn"] is False
        assert config["users"] == []
        assert response.status_code == 404
        return
    assert config["signIn"] is True
    assert [u["login"] for u in config["users"]] == [u.login for u in DEMO_USERS]
    assert response.status_code == 200
    body = response.json()
    principal = JwtValidator("hero.local", "hero.clients", KEY).validate(body["accessToken"])
    assert principal.tenant_id == DEMO_TENANT
    assert principal.name == "Bob"
    assert str(principal.user_id) == body["userId"]
    unknown = await client.post("/demo/token", json={"login": "mallory"})
    assert unknown.status_code == 400
    assert unknown.headers["content-type"] == "application/problem+json"
    broken = await client.post("/demo/token", content=b"{not json")
    assert broken.status_code == 400
