"""Bad and unusual HTTP requests against the REAL server.

Negotiate (checklist 1-5, 8, 9, 11), routing errors and status codes for WebSocket,
long-polling, Server-Sent Events and POST requests (12, 13, 20, 26), and long polling
(17, 21, 23, 24, 47). The DELETE-during-a-pending-poll test (24) uses the in-process
`short_timeout_server` so it can see the poll pending on the server.

Raw clients only (helpers in tests/integration/raw_peer.py). Every test that feeds bad
input checks the documented reaction (docs/protocol.md §§2-9, checklist of section 13)
and then that a second connection, opened before the bad input, still works
(`assert_healthy`).
"""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from hero.realtime.transports import ConnectionState
from tests.integration.conftest import InProcessServer
from tests.integration.raw_peer import (
    CLOSE_WITH_ERROR_JSON,
    HUB_PATH,
    URL_SAFE,
    RawPeer,
    assert_healthy,
    handshake_request,
    negotiate,
    open_ws,
    record,
    start_long_polling,
    token_of,
    ws_hub_url,
    ws_rejection,
)
from tests.support.servers import RunningServer

# --------------------------------------------------------------------------------------
# Negotiate (docs/protocol.md §2; checklist 1-5, 8, 9, 11)
# --------------------------------------------------------------------------------------

TRANSPORTS = [
    {"transport": "WebSockets", "transferFormats": ["Text", "Binary"]},
    {"transport": "ServerSentEvents", "transferFormats": ["Text"]},
    {"transport": "LongPolling", "transferFormats": ["Text", "Binary"]},
]


async def test_checklist_1_5_negotiate_version_1(
    http: httpx.AsyncClient, healthy: RawPeer, unit: float
) -> None:
    response = await http.post(f"{HUB_PATH}/negotiate", params={"negotiateVersion": "1"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {
        "negotiateVersion",
        "connectionId",
        "connectionToken",
        "availableTransports",
    }
    assert body["negotiateVersion"] == 1
    assert body["connectionId"] and body["connectionToken"]
    assert body["connectionId"] != body["connectionToken"]
    assert body["availableTransports"] == TRANSPORTS
    # v1 clients connect with the token.
    peer = RawPeer(
        await open_ws(ws_hub_url(str(http.base_url), id=body["connectionToken"]), unit), unit
    )
    await peer.handshake()
    connection_id = await peer.invoke("ConnectionId", invocation_id="id")
    assert connection_id["result"] == body["connectionId"]
    await peer.close()
    await assert_healthy(healthy)


async def test_checklist_2_negotiate_version_0_has_no_token_and_id_connects(
    http: httpx.AsyncClient, healthy: RawPeer, unit: float
) -> None:
    response = await http.post(
        f"{HUB_PATH}/negotiate", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"negotiateVersion", "connectionId", "availableTransports"}
    assert body["negotiateVersion"] == 0
    assert body["availableTransports"] == TRANSPORTS
    peer = RawPeer(
        await open_ws(ws_hub_url(str(http.base_url), id=body["connectionId"]), unit), unit
    )
    await peer.handshake()
    connection_id = await peer.invoke("ConnectionId", invocation_id="id")
    assert connection_id["result"] == body["connectionId"]
    await peer.close()
    await assert_healthy(healthy)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param({"negotiateVersion": "5"}, 1, id="5-is-answered-with-1"),
        pytest.param({"negotiateVersion": "0"}, 0, id="0"),
        pytest.param({"NegotiateVersion": "1"}, 1, id="key-case-insensitive"),
    ],
)
async def test_checklist_3_negotiate_version_selection(
    http: httpx.AsyncClient, healthy: RawPeer, query: dict[str, str], expected: int
) -> None:
    response = await http.post(f"{HUB_PATH}/negotiate", params=query)
    assert response.status_code == 200
    assert response.json()["negotiateVersion"] == expected
    await assert_healthy(healthy)


async def test_checklist_4_non_integer_negotiate_version_is_an_error_body(
    http: httpx.AsyncClient, healthy: RawPeer
) -> None:
    response = await http.post(f"{HUB_PATH}/negotiate", params={"negotiateVersion": "abc"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.content == b'{"error":"The client requested a non-integer protocol version."}'
    await assert_healthy(healthy)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_checklist_8_negotiate_other_than_post_is_405(
    http: httpx.AsyncClient, healthy: RawPeer, method: str
) -> None:
    response = await http.request(method, f"{HUB_PATH}/negotiate", params={"negotiateVersion": "1"})
    assert response.status_code == 405
    await assert_healthy(healthy)


async def test_unsupported_method_on_the_hub_is_405(
    http: httpx.AsyncClient, healthy: RawPeer
) -> None:
    response = await http.put(HUB_PATH, params={"id": "x"})
    assert response.status_code == 405
    await assert_healthy(healthy)


async def test_checklist_9_ids_and_tokens_are_url_safe_and_distinct(
    http: httpx.AsyncClient, healthy: RawPeer
) -> None:
    seen: set[str] = set()
    for _ in range(20):
        body = await negotiate(http)
        for value in (body["connectionId"], body["connectionToken"]):
            assert URL_SAFE.match(value), value
            assert value not in seen
            seen.add(value)
        v0 = await negotiate(http, version=None)
        assert URL_SAFE.match(v0["connectionId"])
    await assert_healthy(healthy)


async def test_checklist_11_unknown_query_parameters_are_ignored(
    http: httpx.AsyncClient, healthy: RawPeer, unit: float
) -> None:
    extra = {"_": "1712345678901", "app": "mine", "access_token": "not-checked-here"}
    response = await http.post(f"{HUB_PATH}/negotiate", params={"negotiateVersion": "1", **extra})
    assert response.status_code == 200
    token = response.json()["connectionToken"]
    # WebSocket with the same extra parameters.
    url = ws_hub_url(str(http.base_url), id=token, **extra)
    peer = RawPeer(await open_ws(url, unit), unit)
    await peer.handshake()
    await assert_healthy(peer)
    await peer.close()
    # Long polling with a cache buster and extras on polls and sends.
    lp = token_of(await negotiate(http))
    first = await http.get(HUB_PATH, params={"id": lp, **extra})
    assert first.status_code == 200
    sent = await http.post(HUB_PATH, params={"id": lp, **extra}, content=handshake_request())
    assert sent.status_code == 200
    reply = await http.get(HUB_PATH, params={"id": lp, "_": "2"})
    assert reply.content == b"{}\x1e"
    deleted = await http.delete(HUB_PATH, params={"id": lp, **extra})
    assert deleted.status_code == 202
    await assert_healthy(healthy)


# --------------------------------------------------------------------------------------
# HTTP routing errors (docs/protocol.md §3.1; checklist 12, 13, 20, 26)
# --------------------------------------------------------------------------------------


async def test_checklist_12_websocket_without_id_creates_a_connection(
    conformance_server: RunningServer, healthy: RawPeer, unit: float
) -> None:
    peer = await RawPeer.connect(conformance_server.base_url, unit)
    await peer.handshake()
    first = await peer.invoke("ConnectionId", invocation_id="1")
    other = await healthy.invoke("ConnectionId", invocation_id="2")
    assert first["result"] and URL_SAFE.match(first["result"])
    assert first["result"] != other["result"]
    await peer.close()
    await assert_healthy(healthy)


async def test_checklist_13_websocket_for_unknown_id_is_404(
    conformance_server: RunningServer, healthy: RawPeer, unit: float
) -> None:
    url = ws_hub_url(conformance_server.base_url, id="no-such-connection")
    status, body = await ws_rejection(url, unit)
    assert status == 404
    assert body == b"No Connection with that ID"
    await assert_healthy(healthy)


async def test_checklist_13_second_websocket_for_an_active_id_is_409(
    http: httpx.AsyncClient, healthy: RawPeer, unit: float
) -> None:
    token = token_of(await negotiate(http))
    url = ws_hub_url(str(http.base_url), id=token)
    first = RawPeer(await open_ws(url, unit), unit)
    await first.handshake()
    status, _ = await ws_rejection(url, unit)
    assert status == 409
    # The live connection was not hijacked.
    await assert_healthy(first)
    await first.close()
    await assert_healthy(healthy)


async def test_checklist_20_post_status_codes(
    http: httpx.AsyncClient, healthy: RawPeer, unit: float
) -> None:
    no_id = await http.post(HUB_PATH, content=b'{"type":6}\x1e')
    assert (no_id.status_code, no_id.text) == (400, "Connection ID required")
    unknown = await http.post(HUB_PATH, params={"id": "nope"}, content=b'{"type":6}\x1e')
    assert (unknown.status_code, unknown.text) == (404, "No Connection with that ID")

    # 200 with an empty body on a long-polling connection.
    token = await start_long_polling(http)
    sent = await http.post(HUB_PATH, params={"id": token}, content=b'{"type":6}\x1e')
    assert (sent.status_code, sent.content) == (200, b"")
    assert (await http.delete(HUB_PATH, params={"id": token})).status_code == 202

    # 405 on a WebSocket connection.
    ws_token = token_of(await negotiate(http))
    peer = RawPeer(await open_ws(ws_hub_url(str(http.base_url), id=ws_token), unit), unit)
    await peer.handshake()
    refused = await http.post(HUB_PATH, params={"id": ws_token}, content=b'{"type":6}\x1e')
    assert refused.status_code == 405
    assert refused.text == "POST requests are not allowed for WebSocket connections."
    await assert_healthy(peer)  # the refused POST did not disturb the WebSocket
    await peer.close()
    await assert_healthy(healthy)


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        pytest.param("GET", {}, id="long-poll"),
        pytest.param("GET", {"Accept": "text/event-stream"}, id="sse"),
        pytest.param("DELETE", {}, id="delete"),
    ],
)
async def test_checklist_20_other_requests_without_or_with_unknown_id(
    http: httpx.AsyncClient, healthy: RawPeer, method: str, headers: dict[str, str]
) -> None:
    no_id = await http.request(method, HUB_PATH, headers=headers)
    assert (no_id.status_code, no_id.text) == (400, "Connection ID required")
    unknown = await http.request(method, HUB_PATH, params={"id": "nope"}, headers=headers)
    assert (unknown.status_code, unknown.text) == (404, "No Connection with that ID")
    await assert_healthy(healthy)


async def test_delete_on_a_websocket_connection_is_400(
    http: httpx.AsyncClient, healthy: RawPeer, unit: float
) -> None:
    token = token_of(await negotiate(http))
    peer = RawPeer(await open_ws(ws_hub_url(str(http.base_url), id=token), unit), unit)
    await peer.handshake()
    response = await http.delete(HUB_PATH, params={"id": token})
    assert response.status_code == 400
    assert response.text == "Cannot terminate this connection using the DELETE endpoint."
    await assert_healthy(peer)
    await peer.close()
    await assert_healthy(healthy)


async def test_checklist_26_changing_transport_mid_connection_is_400(
    http: httpx.AsyncClient, healthy: RawPeer, unit: float
) -> None:
    changed = b"Cannot change transports mid-connection"
    # Long polling first, then WebSockets / SSE with the same id.
    token = token_of(await negotiate(http))
    assert (await http.get(HUB_PATH, params={"id": token})).status_code == 200
    status, body = await ws_rejection(ws_hub_url(str(http.base_url), id=token), unit)
    assert (status, body) == (400, changed)
    sse = await http.get(HUB_PATH, params={"id": token}, headers={"Accept": "text/event-stream"})
    assert (sse.status_code, sse.content) == (400, changed)
    assert (await http.delete(HUB_PATH, params={"id": token})).status_code == 202

    # WebSockets first, then a long poll with the same id.
    ws_token = token_of(await negotiate(http))
    peer = RawPeer(await open_ws(ws_hub_url(str(http.base_url), id=ws_token), unit), unit)
    await peer.handshake()
    poll = await http.get(HUB_PATH, params={"id": ws_token})
    assert (poll.status_code, poll.content) == (400, changed)
    await assert_healthy(peer)
    await peer.close()
    await assert_healthy(healthy)


# --------------------------------------------------------------------------------------
# Long polling (docs/protocol.md §3.5; checklist 17, 21, 23)
# --------------------------------------------------------------------------------------


async def test_checklist_21_first_poll_returns_200_empty_at_once(
    http: httpx.AsyncClient, healthy: RawPeer, unit: float
) -> None:
    token = token_of(await negotiate(http))
    started = time.monotonic()
    first = await http.get(HUB_PATH, params={"id": token, "_": "1"})
    assert time.monotonic() - started < 2 * unit
    assert first.status_code == 200
    assert first.content == b""
    assert first.headers["content-length"] == "0"
    assert (await http.delete(HUB_PATH, params={"id": token})).status_code == 202
    await assert_healthy(healthy)


async def test_checklist_17_long_polling_batched_and_split_posts(
    http: httpx.AsyncClient, healthy: RawPeer
) -> None:
    token = await start_long_polling(http)
    one = record({"type": 1, "target": "Echo", "arguments": ["one"], "invocationId": "1"})
    two = record({"type": 1, "target": "Add", "arguments": [2, 3], "invocationId": "2"})
    # Two messages in one POST, the second cut in half; the rest in the next POST.
    assert (
        await http.post(HUB_PATH, params={"id": token}, content=one + two[:9])
    ).status_code == 200
    assert (await http.post(HUB_PATH, params={"id": token}, content=two[9:])).status_code == 200
    received = b""
    while received.count(b"\x1e") < 2:
        poll = await http.get(HUB_PATH, params={"id": token})
        assert poll.status_code == 200
        received += poll.content
    assert received == (
        b'{"type":3,"invocationId":"1","result":"one"}\x1e'
        b'{"type":3,"invocationId":"2","result":5}\x1e'
    )
    assert (await http.delete(HUB_PATH, params={"id": token})).status_code == 202
    await assert_healthy(healthy)


async def test_checklist_23_poll_after_server_close_gets_close_then_204(
    http: httpx.AsyncClient, healthy: RawPeer
) -> None:
    token = await start_long_polling(http)
    abort = record({"type": 1, "target": "Abort", "arguments": [], "invocationId": "a"})
    assert (await http.post(HUB_PATH, params={"id": token}, content=abort)).status_code == 200
    closing = await http.get(HUB_PATH, params={"id": token})
    assert (closing.status_code, closing.content) == (200, b'{"type":7}\x1e')
    over = await http.get(HUB_PATH, params={"id": token})
    assert over.status_code == 204
    gone = await http.get(HUB_PATH, params={"id": token})
    assert gone.status_code == 404
    await assert_healthy(healthy)


async def test_checklist_47_long_polling_protocol_error_close_message(
    http: httpx.AsyncClient, healthy: RawPeer
) -> None:
    token = await start_long_polling(http)
    sent = await http.post(HUB_PATH, params={"id": token}, content=b"{not json}\x1e")
    assert sent.status_code == 200
    closing = await http.get(HUB_PATH, params={"id": token})
    assert closing.status_code == 200
    assert json.loads(closing.content.rstrip(b"\x1e")) == CLOSE_WITH_ERROR_JSON
    assert (await http.get(HUB_PATH, params={"id": token})).status_code == 204
    await assert_healthy(healthy)


async def test_checklist_24_delete_ends_pending_poll_with_204(
    short_timeout_server: InProcessServer,
    short_http: httpx.AsyncClient,
    short_healthy: RawPeer,
    unit: float,
) -> None:
    """In-process so the test can see when the poll is really pending on the server."""
    token = await start_long_polling(short_http)
    connection = short_timeout_server.hub.endpoint.connections.get(token)
    assert connection is not None
    pending = asyncio.create_task(short_http.get(HUB_PATH, params={"id": token}))
    await asyncio.wait_for(connection.lifecycle.until(ConnectionState.ACTIVE), 5 * unit)
    deleted = await short_http.delete(HUB_PATH, params={"id": token})
    assert deleted.status_code == 202
    poll = await asyncio.wait_for(pending, 5 * unit)
    assert poll.status_code == 204
    after = await short_http.get(HUB_PATH, params={"id": token})
    assert (after.status_code, after.text) == (404, "No Connection with that ID")
    await assert_healthy(short_healthy)
