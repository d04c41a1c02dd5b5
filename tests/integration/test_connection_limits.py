"""`RateLimiting:Negotiate` and `RateLimiting:MaximumConnectionsPerUser` on a real server.

The platform app runs under uvicorn on 127.0.0.1; each client binds its own loopback address
(127.0.0.x: all of 127/8 is loopback on Linux), which uvicorn reports as the ASGI `client`,
so the per-address limit sees distinct clients. WebSocket refusals arrive as HTTP 429 through
uvicorn's `websocket.http.response` support.
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.integration.platform_app import SIGNING_KEY, clean_environ, mint, platform_app
from tests.integration.raw_peer import RawPeer, handshake_request
from tests.support.servers import UNIT, RunningServer

HUB = "/realtime/hub"
NEGOTIATE_LIMIT = 3
NEGOTIATE_WINDOW = 600  # seconds: no window ends during the module
USER_LIMIT = 2


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    env = clean_environ(
        {
            "JwtOptions__SigningKey": SIGNING_KEY,
            "DatabaseOptions__ConnectionString": "sqlite+aiosqlite:///:memory:",
            "RateLimiting__Negotiate__PermitLimit": str(NEGOTIATE_LIMIT),
            "RateLimiting__Negotiate__WindowSeconds": str(NEGOTIATE_WINDOW),
            "RateLimiting__MaximumConnectionsPerUser": str(USER_LIMIT),
        }
    )
    with platform_app(env) as running:
        yield running


@asynccontextmanager
async def http_from(server: RunningServer, address: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(
        transport=transport, base_url=server.base_url, timeout=10 * UNIT
    ) as http:
        yield http


def ws_url(server: RunningServer, **query: str) -> str:
    return "ws" + server.base_url.removeprefix("http") + HUB + "?" + urlencode(query)


async def open_peer(server: RunningServer, address: str, **query: str) -> RawPeer:
    ws = await websockets.connect(
        ws_url(server, **query),
        open_timeout=10 * UNIT,
        close_timeout=5 * UNIT,
        ping_interval=None,
        proxy=None,
        local_addr=(address, 0),
    )
    return RawPeer(ws, UNIT)


async def ws_refusal(server: RunningServer, address: str, **query: str) -> httpx.Headers:
    """A WebSocket upgrade the server must refuse with 429; returns the response headers."""
    with pytest.raises(InvalidStatus) as info:
        peer = await open_peer(server, address, **query)
        await peer.close()
    response = info.value.response
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/problem+json"
    assert b'"status":429' in (response.body or b"")
    return httpx.Headers(dict(response.headers.raw_items()))


async def negotiate(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.post(
        f"{HUB}/negotiate", params={"negotiateVersion": "1", "access_token": token}
    )


async def who_am_i(peer: RawPeer) -> dict[str, Any]:
    """Handshake, then invoke WhoAmI; events sent meanwhile (PresenceChanged) are skipped."""
    await peer.handshake()
    invocation_id = uuid.uuid4().hex
    await peer.send_invocation("WhoAmI", invocation_id=invocation_id)
    while (message := await peer.next_message()).get("type") == 1:
        pass
    assert message.get("type") == 3 and message.get("invocationId") == invocation_id, message
    assert "error" not in message, message
    result: dict[str, Any] = message["result"]
    return result


def assert_problem_429(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 429, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == 429 and body["title"] == "Too Many Requests"
    return body


async def rejections(http: httpx.AsyncClient, limit: str) -> float:
    text = (await http.get("/metrics")).text
    found = re.search(rf'^hero_rate_limit_rejections_total\{{limit="{limit}"\}} (\S+)$', text, re.M)
    assert found, text
    return float(found.group(1))


def assert_quiet(server: RunningServer) -> None:
    """Refusals are answers, not failures: nothing at ERROR and no traceback in the log."""
    log = server.log()
    assert "Traceback" not in log and "ERROR" not in log, log


async def test_new_connections_past_the_rate_of_an_address_get_429(
    server: RunningServer,
) -> None:
    flooder, steady = "127.0.0.2", "127.0.0.3"
    tokens = [mint(uuid.uuid4()) for _ in range(NEGOTIATE_LIMIT + 3)]  # under the user limit
    async with http_from(server, flooder) as http, http_from(server, steady) as other:
        before = await rejections(other, "negotiate")
        negotiated = [await negotiate(http, t) for t in tokens[:NEGOTIATE_LIMIT]]
        assert [r.status_code for r in negotiated] == [200] * NEGOTIATE_LIMIT

        refused = await negotiate(http, tokens[-1])
        body = assert_problem_429(refused)
        retry_after = int(refused.headers["retry-after"])
        assert 1 <= retry_after <= NEGOTIATE_WINDOW
        assert "from this address" in body["detail"]
        # a WebSocket without negotiate is a new connection too
        headers = await ws_refusal(server, flooder, access_token=tokens[-2])
        assert 1 <= int(headers["retry-after"]) <= NEGOTIATE_WINDOW

        # the second leg of a connection negotiated in time is not a new connection
        connection_token = negotiated[0].json()["connectionToken"]
        peer = await open_peer(server, flooder, id=connection_token, access_token=tokens[0])
        try:
            assert (await who_am_i(peer))["connectionId"] == negotiated[0].json()["connectionId"]
        finally:
            await peer.close()

        # another address negotiates and connects meanwhile
        assert (await negotiate(other, tokens[-1])).status_code == 200
        steady_peer = await open_peer(server, steady, access_token=tokens[-3])
        try:
            await who_am_i(steady_peer)
        finally:
            await steady_peer.close()
        assert await rejections(other, "negotiate") == before + 2
    assert_quiet(server)


async def test_connections_past_the_limit_of_a_user_get_429(server: RunningServer) -> None:
    alice, bob = mint(uuid.uuid4()), mint(uuid.uuid4())
    # every new connection from its own address, so the address rate stays out of the way
    addresses = (f"127.0.1.{n}" for n in itertools.count(1))
    async with AsyncExitStack() as stack:

        async def fresh() -> httpx.AsyncClient:
            return await stack.enter_async_context(http_from(server, next(addresses)))

        metrics = await fresh()
        before = await rejections(metrics, "user_connections")
        # two connections, one negotiated and never used, one on long polling
        assert (await negotiate(await fresh(), alice)).status_code == 200
        polling_http = await fresh()
        polling = await negotiate(polling_http, alice)
        assert polling.status_code == 200
        polling_id = {"id": polling.json()["connectionToken"], "access_token": alice}
        assert (await polling_http.get(HUB, params=polling_id)).status_code == 200

        body = assert_problem_429(await negotiate(await fresh(), alice))
        assert f"already has {USER_LIMIT} open connections" in body["detail"]
        assert "retry-after" not in (await negotiate(await fresh(), alice)).headers
        await ws_refusal(server, next(addresses), access_token=alice)

        # another user connects and works meanwhile
        peer = await open_peer(server, next(addresses), access_token=bob)
        try:
            await who_am_i(peer)
        finally:
            await peer.close()

        # a connection that ends makes room
        sent = await polling_http.post(HUB, params=polling_id, content=handshake_request())
        assert sent.status_code == 200
        assert (await polling_http.delete(HUB, params=polling_id)).status_code == 202
        again = await negotiate(await fresh(), alice)
        assert again.status_code == 200, again.text
        assert await rejections(metrics, "user_connections") == before + 3
    assert_quiet(server)
