"""`hero serve --workers N` on one Valkey: several processes share one socket.

Consecutive requests of one connection may reach different processes. Connection tokens are
signed and name the process that holds the connection: whichever process receives the
WebSocket adopts a connection another one negotiated, and a long-polling or SSE request that
reaches another process is relayed to the holder, and so is a stateful reconnect's resumed
WebSocket. Every transport is offered, and stateful reconnect with it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import valkey
import websockets

from hero.auth import mint_token
from hero.realtime import EndpointOptions, HubServer, HubServerOptions
from hero.realtime.testing import ConformanceHub
from tests.integration.conftest import serve_in_process
from tests.integration.js.agent import NodeAgent
from tests.support.servers import UNIT, RunningServer, run_hero
from tests.support.valkey import ValkeyEndpoint

pytest_plugins = ("tests.support.valkey_fixtures",)
pytestmark = [pytest.mark.valkey, pytest.mark.interop]

KEY = "workers-test-signing-key-0123456789abcdef"
DATABASE = 9  # a logical database of its own: presence keys use the fixed `hero:` prefix


def token_for(user: uuid.UUID, tenant: str) -> str:
    return mint_token(KEY, "hero.local", "hero.clients", user, tenant=tenant)


@pytest.fixture
def workers(valkey_server: ValkeyEndpoint, tmp_path: Path) -> Iterator[RunningServer]:
    url = f"redis://{valkey_server.host}:{valkey_server.port}/{DATABASE}"
    client: Any = valkey.Valkey.from_url(url, socket_timeout=10 * UNIT)
    try:
        client.flushdb()
    finally:
        client.close()
    env = {
        "JwtOptions__SigningKey": KEY,
        "CachingOptions__Redis": url,
        "DatabaseOptions__ConnectionString": f"sqlite+aiosqlite:///{tmp_path / 'hero.db'}",
        "Logging__LogLevel__hero.realtime.relay": "Debug",
    }
    with run_hero(["serve", "--workers", "3"], env) as server:
        yield server


async def test_workers_offer_every_transport_and_fan_out_across_processes(
    workers: RunningServer, agent: NodeAgent, unit: float
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    observer = uuid.uuid4()
    hub = workers.base_url + "/realtime/hub"
    async with httpx.AsyncClient(timeout=10 * unit) as http:
        negotiated = await http.post(
            hub + "/negotiate?negotiateVersion=1",
            headers={"Authorization": f"Bearer {token_for(observer, tenant)}"},
        )
    body = negotiated.json()
    offered = [t["transport"] for t in body["availableTransports"]]
    assert offered == ["WebSockets", "ServerSentEvents", "LongPolling"]
    assert "useStatefulReconnect" not in body  # not asked for

    await agent.connect(
        "observer", hub, tokens=[token_for(observer, tenant)], targets=["PresenceChanged"]
    )
    users = [uuid.uuid4() for _ in range(6)]
    for index, user in enumerate(users):
        # Each negotiate and each WebSocket lands on whichever worker accepts it.
        await agent.connect(f"u{index}", hub, tokens=[token_for(user, tenant)])
    for user in users:
        await agent.next_message(
            "observer",
            "PresenceChanged",
            where=lambda p, user=user: p == {"userId": str(user), "online": True},
        )


@pytest.mark.parametrize(
    ("transport", "protocol"),
    [("LongPolling", "json"), ("LongPolling", "messagepack"), ("ServerSentEvents", "json")],
)
async def test_long_polling_and_sse_work_through_workers(
    workers: RunningServer, agent: NodeAgent, transport: str, protocol: str
) -> None:
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    alice, bob = uuid.uuid4(), uuid.uuid4()
    hub = workers.base_url + "/realtime/hub"
    common: dict[str, Any] = {"transport": transport, "protocol": protocol}
    await agent.connect("bob", hub, tokens=[token_for(bob, tenant)], **common)
    await agent.connect(
        "alice", hub, tokens=[token_for(alice, tenant)], targets=["PresenceChanged"], **common
    )
    for _ in range(30):  # each poll and send may reach any of the three processes
        assert await agent.invoke("alice", "JoinGroup", f"dashboard:{tenant}:d1") is None
    await agent.stop("bob")
    await agent.next_message(
        "alice", "PresenceChanged", where=lambda p: p == {"userId": str(bob), "online": False}
    )
    await agent.stop("alice")


async def test_a_websocket_is_adopted_by_a_process_that_did_not_negotiate_it() -> None:
    """Deterministic: two servers share a token key; negotiate on one, connect on the other."""
    key = b"k" * 32

    def server() -> HubServer:
        options = HubServerOptions(endpoint=EndpointOptions(connection_token_key=key))
        return HubServer(ConformanceHub, options=options)

    stranger = HubServer(ConformanceHub)  # no key: cannot adopt
    async with (
        serve_in_process(server(), "/hub") as first,
        serve_in_process(server(), "/hub") as second,
        serve_in_process(stranger, "/hub") as third,
        httpx.AsyncClient(timeout=10 * UNIT) as http,
    ):
        body = (await http.post(first + "/hub/negotiate?negotiateVersion=1")).json()
        token = body["connectionToken"]
        ws_url = "ws" + second.removeprefix("http") + f"/hub?id={token}"
        async with websockets.connect(ws_url) as ws:
            await ws.send('{"protocol":"json","version":1}\x1e')
            assert await ws.recv() == "{}\x1e"
            await ws.send(
                '{"type":1,"invocationId":"1","target":"ConnectionId","arguments":[]}\x1e'
            )
            reply = str(await ws.recv())
            assert f'"result":"{body["connectionId"]}"' in reply
        forged = token.rsplit(".", 1)[0] + ".AAAAAAAAAAAAAAAAAAAAAA"
        for base, wrong in ((second, forged), (third, token)):
            url = "ws" + base.removeprefix("http") + f"/hub?id={wrong}"
            with pytest.raises(websockets.InvalidStatus) as refused:
                await websockets.connect(url)
            assert refused.value.response.status_code == 404


RELAYED = "serving a WebSocket relayed from instance"
"""hero.realtime.relay's DEBUG line on the process holding a connection, for a resumed
socket another process received (the workers fixture turns that logger to DEBUG)."""


@pytest.mark.parametrize("protocol", ["json", "messagepack"])
async def test_stateful_reconnect_resumes_through_workers(
    workers: RunningServer, agent: NodeAgent, unit: float, protocol: str
) -> None:
    """A member's WebSocket is dropped again and again while chat messages are sent to its
    channel. Each resumed socket goes to whichever of the three processes accepts it; one
    that is not the holder relays it to the holder (the holder's log says so, and the test
    goes on until it has seen that at least once, and ten drops). The connection resumes
    every time: same connection id, never reconnecting, every message once and in order."""
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    owner, member = uuid.uuid4(), uuid.uuid4()
    hub = workers.base_url + "/realtime/hub"
    chat = workers.base_url + "/api/v1/chat"

    def headers(user: uuid.UUID) -> dict[str, str]:
        return {"Authorization": f"Bearer {token_for(user, tenant)}"}

    async with httpx.AsyncClient(timeout=10 * unit) as http:
        negotiated = await http.post(
            hub + "/negotiate?negotiateVersion=1&useStatefulReconnect=true",
            headers=headers(member),
        )
        assert negotiated.json()["useStatefulReconnect"] is True
        created = await http.post(
            chat + "/channels",
            json={"name": f"room-{uuid.uuid4().hex[:8]}", "isPrivate": False},
            headers=headers(owner),
        )
        assert created.status_code == 201, created.text
        channel = str(created.json()["id"])
        added = await http.post(
            f"{chat}/channels/{channel}/members",
            json={"userIds": [str(member)]},
            headers=headers(owner),
        )
        assert added.status_code in (200, 201, 204), added.text
        relayed_before = workers.log().count(RELAYED)
        first = await agent.connect(
            "member",
            hub,
            tokens=[token_for(member, tenant)],
            transport="WebSockets",
            protocol=protocol,
            stateful=True,
            reconnect=True,  # a resume that failed would show as reconnecting, a new id
            targets=["ChatMessageCreated"],
        )
        assert await agent.invoke("member", "JoinChannel", channel) is None
        bodies: list[str] = []
        drops = 0
        while drops < 10 or workers.log().count(RELAYED) == relayed_before:
            assert drops < 40, "no resumed socket reached another process than the holder"
            await agent.call("drop", name="member")
            drops += 1
            for _ in range(2):
                text = f"message {len(bodies)}"
                sent = await http.post(
                    f"{chat}/channels/{channel}/messages",
                    json={"body": text},
                    headers=headers(owner),
                )
                assert sent.status_code == 201, sent.text
                bodies.append(text)
            # Served once the socket has resumed: the next drop finds the new socket open.
            assert await agent.invoke("member", "JoinChannel", channel) is None
        await agent.next_message("member", "ChatMessageCreated", count=len(bodies))
    assert [m["body"] for m in agent.args_of("member", "ChatMessageCreated")] == bodies
    state = await agent.state("member")
    assert state == {"state": "Connected", "connectionId": first}
    assert not [e for e in agent.events["member"] if e.kind == "reconnecting"]
    await agent.stop("member")
    closes = [e for e in agent.events["member"] if e.kind == "close"]
    assert closes and closes[0].data.get("error") is None
