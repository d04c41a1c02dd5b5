"""Timeouts against a real hub server: the in-process short-timeout server.

Keep-alive pings and the idle long poll (checklist 22, 44), the client timeout (45), the
handshake timeout (30), the disconnect timeout for unused and unpolled connections (10,
25). `short_timeout_server` (tests/integration/conftest.py) runs these intervals at a
fraction of a second instead of 15-90 s.

Raw clients only (helpers in tests/integration/raw_peer.py). Every test that feeds bad
input checks the documented reaction (docs/protocol.md §§2-9, checklist of section 13)
and then that a second connection, opened before the bad input, still works
(`assert_healthy`).
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.integration.conftest import (
    SHORT_CLIENT_TIMEOUT,
    SHORT_DISCONNECT_TIMEOUT,
    SHORT_HANDSHAKE_TIMEOUT,
    SHORT_KEEP_ALIVE,
    SHORT_LONG_POLL_TIMEOUT,
    InProcessServer,
)
from tests.integration.raw_peer import (
    CLOSE_WITH_ERROR_JSON,
    HUB_PATH,
    RawPeer,
    assert_healthy,
    eventually,
    negotiate,
    record,
    start_long_polling,
    token_of,
    ws_hub_url,
    ws_rejection,
)

# --------------------------------------------------------------------------------------
# Timeouts, on the short-timeout server (checklist 10, 22, 25, 30, 44, 45)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["json", "messagepack"])
async def test_checklist_44_server_pings_an_idle_websocket(
    short_timeout_server: InProcessServer,
    short_healthy: RawPeer,
    unit: float,
    protocol: str,
) -> None:
    peer = await RawPeer.connect(short_timeout_server.base_url, unit)
    await peer.handshake(protocol)
    started = time.monotonic()
    for _ in range(2):
        frame = await peer.raw_frame(SHORT_KEEP_ALIVE + 3 * unit)
        if protocol == "json":
            assert frame == '{"type":6}\x1e'
        else:
            assert frame == b"\x02\x91\x06"
    assert time.monotonic() - started >= SHORT_KEEP_ALIVE  # not a flood
    await peer.close()
    await assert_healthy(short_healthy)


async def test_checklist_45_silence_after_first_ping_closes_with_allow_reconnect(
    short_timeout_server: InProcessServer, short_healthy: RawPeer, unit: float
) -> None:
    peer = await RawPeer.connect(short_timeout_server.base_url, unit)
    await peer.handshake()
    await peer.send_json({"type": 6})
    started = time.monotonic()
    close = await peer.next_message(SHORT_CLIENT_TIMEOUT + 5 * unit)  # pings are skipped
    elapsed = time.monotonic() - started
    assert close == CLOSE_WITH_ERROR_JSON
    assert elapsed >= SHORT_CLIENT_TIMEOUT * 0.9
    assert await peer.expect_closed() == 1000
    await assert_healthy(short_healthy)


async def test_checklist_45_client_that_never_pings_is_not_timed_out(
    short_timeout_server: InProcessServer, short_healthy: RawPeer, unit: float
) -> None:
    """The client timeout is armed only by the client's first Ping (docs/protocol.md §7.3)."""
    peer = await RawPeer.connect(short_timeout_server.base_url, unit)
    await peer.handshake()
    await asyncio.sleep(SHORT_CLIENT_TIMEOUT * 1.5)  # silence is the point of this test
    await assert_healthy(peer)
    await peer.close()
    await assert_healthy(short_healthy)


async def test_checklist_45_client_that_keeps_sending_is_not_timed_out(
    short_timeout_server: InProcessServer, short_healthy: RawPeer, unit: float
) -> None:
    peer = await RawPeer.connect(short_timeout_server.base_url, unit)
    await peer.handshake()
    loop = asyncio.get_running_loop()
    until = loop.time() + SHORT_CLIENT_TIMEOUT * 1.5
    while loop.time() < until:  # the client's own keep-alive cadence
        await peer.send_json({"type": 6})
        await asyncio.sleep(SHORT_CLIENT_TIMEOUT / 3)
    await assert_healthy(peer)
    await peer.close()
    await assert_healthy(short_healthy)


@pytest.mark.parametrize("partial", ["", '{"protocol":"json",'], ids=["nothing", "partial"])
async def test_checklist_30_no_handshake_in_time_is_canceled(
    short_timeout_server: InProcessServer, short_healthy: RawPeer, unit: float, partial: str
) -> None:
    peer = await RawPeer.connect(short_timeout_server.base_url, unit)
    started = time.monotonic()
    if partial:
        await peer.send(partial)
    reply = await peer.raw_frame(SHORT_HANDSHAKE_TIMEOUT + 5 * unit)
    assert reply == '{"error":"Handshake was canceled."}\x1e'
    assert time.monotonic() - started >= SHORT_HANDSHAKE_TIMEOUT * 0.9
    assert await peer.expect_closed() == 1000
    await assert_healthy(short_healthy)


async def test_checklist_10_negotiated_but_unused_id_expires(
    short_timeout_server: InProcessServer,
    short_http: httpx.AsyncClient,
    short_healthy: RawPeer,
    unit: float,
) -> None:
    token = token_of(await negotiate(short_http))
    started = time.monotonic()

    # DELETE on a connection without a transport is refused with 400 and changes nothing;
    # once the connection was discarded it is 404.
    async def discarded() -> bool:
        response = await short_http.delete(HUB_PATH, params={"id": token})
        assert response.status_code in (400, 404), response
        return response.status_code == 404

    assert not await discarded()
    await eventually(discarded, SHORT_DISCONNECT_TIMEOUT + 5 * unit)
    assert time.monotonic() - started >= SHORT_DISCONNECT_TIMEOUT * 0.9
    status, body = await ws_rejection(ws_hub_url(short_timeout_server.base_url, id=token), unit)
    assert (status, body) == (404, b"No Connection with that ID")
    await assert_healthy(short_healthy)


async def _sse_probe_status(http: httpx.AsyncClient, token: str) -> int:
    """An SSE GET for a long-polling id: 400 (wrong transport) while it exists, then 404.

    Unlike a poll, POST or DELETE it does not touch the connection.
    """
    response = await http.get(
        HUB_PATH, params={"id": token}, headers={"Accept": "text/event-stream"}
    )
    assert response.status_code in (400, 404), response
    return response.status_code


async def test_checklist_25_long_polling_connection_without_polls_is_disposed(
    short_http: httpx.AsyncClient, short_healthy: RawPeer, unit: float
) -> None:
    token = await start_long_polling(short_http)
    started = time.monotonic()
    assert await _sse_probe_status(short_http, token) == 400

    async def disposed() -> bool:
        return await _sse_probe_status(short_http, token) == 404

    await eventually(disposed, SHORT_DISCONNECT_TIMEOUT + 5 * unit)
    assert time.monotonic() - started >= SHORT_DISCONNECT_TIMEOUT * 0.9
    poll = await short_http.get(HUB_PATH, params={"id": token})
    assert (poll.status_code, poll.text) == (404, "No Connection with that ID")
    await assert_healthy(short_healthy)


async def test_checklist_25_long_polling_connection_that_only_posts_is_disposed(
    short_http: httpx.AsyncClient, short_healthy: RawPeer, unit: float
) -> None:
    token = await start_long_polling(short_http)

    async def disposed() -> bool:
        sent = await short_http.post(HUB_PATH, params={"id": token}, content=b'{"type":6}\x1e')
        assert sent.status_code in (200, 404), sent
        return sent.status_code == 404

    await eventually(disposed, SHORT_DISCONNECT_TIMEOUT + 3 * unit, interval=0.2)
    await assert_healthy(short_healthy)


async def test_checklist_22_44_idle_poll_returns_empty_200_after_poll_timeout(
    short_http: httpx.AsyncClient, short_healthy: RawPeer, unit: float
) -> None:
    """The keep-alive interval is shorter than the poll timeout: no Ping on long polling."""
    token = await start_long_polling(short_http)
    started = time.monotonic()
    idle = await short_http.get(HUB_PATH, params={"id": token})
    elapsed = time.monotonic() - started
    assert idle.status_code == 200
    assert idle.content == b""
    assert SHORT_LONG_POLL_TIMEOUT * 0.9 <= elapsed <= SHORT_LONG_POLL_TIMEOUT + 3 * unit
    # Still the same live connection.
    echo = record({"type": 1, "target": "Echo", "arguments": ["lp"], "invocationId": "1"})
    assert (await short_http.post(HUB_PATH, params={"id": token}, content=echo)).status_code == 200
    data = await short_http.get(HUB_PATH, params={"id": token})
    assert data.content == b'{"type":3,"invocationId":"1","result":"lp"}\x1e'
    assert (await short_http.delete(HUB_PATH, params={"id": token})).status_code == 202
    await assert_healthy(short_healthy)
