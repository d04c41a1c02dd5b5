"""Hostile input to the REST API is a 4xx problem naming the field, never a 500, and the
OpenAPI document describes the errors that are actually sent (found by test_openapi_fuzz
and by probing around what it generated)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hero.auth import mint_token
from hero.platform.app import create_app
from hero.platform.settings import load_settings
from hero.realtime.testing import lifespan
from tests.app.test_chat_api import KEY

USER = uuid.uuid4()
API = "/api/v1/chat"
AUTH = {
    "Authorization": "Bearer "
    + mint_token(KEY, "hero.local", "hero.clients", USER, tenant="acme", roles=["admin"])
}
JSON = {**AUTH, "Content-Type": "application/json"}


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = load_settings(
        None,
        {
            "JwtOptions__SigningKey": KEY,
            "DatabaseOptions__ConnectionString": f"sqlite+aiosqlite:///{tmp_path / 'hero.db'}",
        },
    )
    app = create_app(settings)
    async with lifespan(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hero") as client:
            yield client


async def ids(http: httpx.AsyncClient) -> tuple[str, str]:
    channel = await http.post(f"{API}/channels", json={"name": "general"}, headers=AUTH)
    cid = channel.json()["id"]
    message = await http.post(f"{API}/channels/{cid}/messages", json={"body": "hi"}, headers=AUTH)
    return cid, message.json()["id"]


def assert_problem(response: httpx.Response, status: int, field: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["field"] == field, body
    return body


NOTE = '{{"userId": "{user}", "title": "t", '
# Raw JSON: `\u0000` is NUL, `\ud800` an unpaired surrogate; json.loads accepts both.
JSON_TEXT = [
    ("POST", "/channels", '{{"name": "{bad}"}}', "name"),
    ("POST", "/channels", '{{"name": "ok", "description": "{bad}"}}', "description"),
    ("PUT", "/channels/{cid}", '{{"name": "ok", "description": "{bad}"}}', "description"),
    ("POST", "/channels/{cid}/messages", '{{"body": "{bad}"}}', "body"),
    ("PUT", "/messages/{mid}", '{{"body": "{bad}"}}', "body"),
    ("POST", "/messages/{mid}/reactions", '{{"emoji": "{bad}"}}', "emoji"),
    ("POST", "/api/v1/notifications", NOTE + '"type": "{bad}"}}', "type"),
    ("POST", "/api/v1/notifications", NOTE + '"type": "t", "link": "{bad}"}}', "link"),
]


async def test_nul_and_lone_surrogates_in_json_text_are_400(http: httpx.AsyncClient) -> None:
    cid, mid = await ids(http)
    for method, path, template, field in JSON_TEXT:
        url = path.format(cid=cid, mid=mid)
        url = url if url.startswith("/api/") else API + url
        for bad in ("a\\u0000b", "\\ud800", "x\\udfff"):
            content = template.format(bad=bad, user=USER).encode()
            response = await http.request(method, url, content=content, headers=JSON)
            assert_problem(response, 400, field)


async def test_nul_in_query_path_and_header_text_is_400(http: httpx.AsyncClient) -> None:
    cid, mid = await ids(http)
    # FTS5 failed on NUL inside a quoted term: 500 before
    assert_problem(await http.get(f"{API}/search", params={"q": "a\x00"}, headers=AUTH), 400, "q")
    discover = await http.get(f"{API}/channels/discover", params={"search": "\x00"}, headers=AUTH)
    assert_problem(discover, 400, "search")
    unreact = await http.delete(f"{API}/messages/{mid}/reactions/%00", headers=AUTH)
    assert_problem(unreact, 400, "emoji")
    headers = {**AUTH, "Idempotency-Key": "a\x00b"}
    post = await http.post(f"{API}/channels/{cid}/messages", json={"body": "x"}, headers=headers)
    assert_problem(post, 400, "Idempotency-Key")


async def test_unreadable_or_missing_bodies_name_the_body(http: httpx.AsyncClient) -> None:
    for content in (b"\xff\xfe{", b"{", b""):
        response = await http.post(f"{API}/channels", content=content, headers=JSON)
        assert_problem(response, 400, "body")


async def test_405_allows_every_method_of_the_path(http: httpx.AsyncClient) -> None:
    cid, _ = await ids(http)
    response = await http.request("PATCH", f"{API}/channels/{cid}", headers=AUTH)
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["allow"] == "DELETE, GET, PUT"
    listing = await http.request("OPTIONS", f"{API}/channels", headers=AUTH)
    assert listing.headers["allow"] == "GET, POST"


async def test_a_dm_names_at_most_eight_others_in_the_schema_too(
    http: httpx.AsyncClient,
) -> None:
    nine = {"userIds": [str(uuid.uuid4()) for _ in range(9)]}
    body = assert_problem(await http.post(f"{API}/dms", json=nine, headers=AUTH), 400, "userIds")
    assert body["errors"][0]["field"] == "body.userIds"
    schema = (await http.get("/openapi.json")).json()["components"]["schemas"]["DmIn"]
    assert schema["properties"]["userIds"]["maxItems"] == 8


async def test_openapi_documents_the_problems_that_are_sent(http: httpx.AsyncClient) -> None:
    document = (await http.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ProblemDetails" in schemas
    problem = {"$ref": "#/components/schemas/ProblemDetails"}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert "422" not in responses, (method, path)
            for status in ("401", "4XX"):
                content = responses[status]["content"]
                assert content == {"application/problem+json": {"schema": problem}}
    dms = document["paths"][f"{API}/dms"]["post"]["responses"]
    messages = document["paths"][f"{API}/channels/{{channel_id}}/messages"]["post"]["responses"]
    assert {"200", "201"} <= set(dms) and {"200", "201"} <= set(messages)
