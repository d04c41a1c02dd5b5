"""Several instances without sticky sessions: every request and socket of a connection goes
to a randomly chosen instance, and the official JS client works over every transport.

The client is given an `httpClient`, an `EventSource` and a `WebSocket` that pick a random
instance for each negotiate, poll, send, DELETE, SSE stream and WebSocket (see
`tests/integration/js/agent.mjs`, `scatter`). A request that reaches an instance which does
not hold the connection is relayed to the one that does (`hero.realtime.Relay`).
"""

from __future__ import annotations

import itertools
import os
import signal
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from tests.integration.js.agent import NodeAgent
from tests.support.servers import UNIT, RunningServer, run_hero
from tests.support.valkey import ValkeyEndpoint

pytest_plugins = ("tests.support.valkey_fixtures",)
pytestmark = pytest.mark.valkey

PATH = "/conformance"


@pytest.fixture(params=[2, 3], ids=["two-instances", "three-instances"])
def instances(
    request: pytest.FixtureRequest, valkey_server: ValkeyEndpoint
) -> Iterator[list[RunningServer]]:
    url = valkey_server.url  # the conformance hub keeps no keys; pub/sub ignores the db
    env = {"CachingOptions__Redis": url}
    with ExitStack() as stack:
        yield [
            stack.enter_context(run_hero(["conformance-server"], env)) for _ in range(request.param)
        ]


@pytest.mark.parametrize(
    ("transport", "protocol"),
    [("LongPolling", "json"), ("LongPolling", "messagepack"), ("ServerSentEvents", "json")],
)
async def test_every_request_on_a_random_instance(
    instances: list[RunningServer], agent: NodeAgent, transport: str, protocol: str
) -> None:
    bases = [server.base_url for server in instances]
    url = bases[0] + PATH  # rewritten per request
    group = f"g-{uuid.uuid4().hex[:8]}"
    common: dict[str, Any] = {"transport": transport, "protocol": protocol, "instances": bases}
    await agent.connect("a", url, targets=["Tick", "Note"], answers=["Confirm"], **common)
    await agent.connect("b", url, targets=["Tick", "Note"], **common)

    for n in range(30):
        assert await agent.invoke("a", "Echo", {"n": n}) == {"n": n}
    assert await agent.stream("a", "Counter", 5, 0) == [0, 1, 2, 3, 4]
    assert await agent.upload("a", "Sum", [1, 2, 3.5]) == 6.5
    assert await agent.invoke("a", "AskClient", "Confirm", {"q": 1}) == 'answered {"q":1}'

    await agent.invoke("a", "Broadcast", "Note", "to everyone")
    await agent.next_message("b", "Note", where=lambda arg: arg == "to everyone")
    await agent.invoke("b", "JoinGroup", group)
    await agent.invoke("a", "SendToGroup", group, "Note", "to the group")
    await agent.next_message("b", "Note", where=lambda arg: arg == "to the group")

    for n in range(200):
        await agent.call("send", name="a", method="SendToGroup", args=[group, "Tick", n])
    await agent.next_message("b", "Tick", count=200, timeout=60 * UNIT)
    assert agent.args_of("b", "Tick") == list(range(200))  # complete and in order

    await agent.stop("a")
    await agent.stop("b")
    closes = [e for e in agent.events["a"] if e.kind == "close"]
    assert closes and closes[0].data.get("error") is None  # a clean stop


@pytest.mark.parametrize("protocol", ["json", "messagepack"])
async def test_stateful_reconnect_resumes_on_another_instance(
    instances: list[RunningServer], agent: NodeAgent, protocol: str
) -> None:
    """WebSockets with stateful reconnect: each socket goes to the next instance, so every
    resume after a dropped socket lands on another instance than the connection's holder; the
    resumed socket is relayed to the holder, and nothing is lost, duplicated or reordered."""
    bases = [server.base_url for server in instances]
    url = bases[0] + PATH
    group = f"g-{uuid.uuid4().hex[:8]}"
    common: dict[str, Any] = {
        "transport": "WebSockets",
        "protocol": protocol,
        "instances": bases,
        "rotate": True,
        "stateful": True,
    }
    first_a = await agent.connect("a", url, targets=["Tick", "Note"], answers=["Confirm"], **common)
    first_b = await agent.connect("b", url, targets=["Tick", "Note"], **common)

    for n in range(30):
        if n % 10 == 5:
            await agent.call("drop", name="a")
        assert await agent.invoke("a", "Echo", {"n": n}) == {"n": n}
    await agent.call("drop", name="a")
    assert await agent.stream("a", "Counter", 5, 0) == [0, 1, 2, 3, 4]
    assert await agent.upload("a", "Sum", [1, 2, 3.5]) == 6.5
    await agent.call("drop", name="a")
    assert await agent.invoke("a", "AskClient", "Confirm", {"q": 1}) == 'answered {"q":1}'

    await agent.invoke("b", "JoinGroup", group)
    await agent.call("drop", name="b")
    await agent.invoke("a", "Broadcast", "Note", "to everyone")
    await agent.next_message("b", "Note", where=lambda arg: arg == "to everyone")
    await agent.invoke("a", "SendToGroup", group, "Note", "to the group")
    await agent.next_message("b", "Note", where=lambda arg: arg == "to the group")

    for n in range(200):
        if n % 50 == 25:  # drops of the receiver and of the sender in the middle of the burst
            await agent.call("drop", name="b" if n % 100 == 25 else "a")
        await agent.call("send", name="a", method="SendToGroup", args=[group, "Tick", n])
    await agent.next_message("b", "Tick", count=200, timeout=60 * UNIT)
    assert agent.args_of("b", "Tick") == list(range(200))  # complete and in order

    for name, first, drops in (("a", first_a, 7), ("b", first_b, 3)):
        assert (await agent.state(name))["connectionId"] == first  # resumed, never replaced
        assert not [e for e in agent.events[name] if e.kind == "reconnecting"]
        sockets = [e.data["base"] for e in agent.events[name] if e.kind == "socket"]
        assert len(sockets) == 1 + drops
        assert all(one != other for one, other in itertools.pairwise(sockets))

    await agent.stop("a")
    await agent.stop("b")
    closes = [e for e in agent.events["a"] if e.kind == "close"]
    assert closes and closes[0].data.get("error") is None  # a clean stop


async def test_a_relay_to_a_dead_owner_answers_404_at_once(valkey_server: ValkeyEndpoint) -> None:
    env = {"CachingOptions__Redis": valkey_server.url}
    with (
        run_hero(["conformance-server"], env) as owner,
        run_hero(["conformance-server"], env) as other,
    ):
        async with httpx.AsyncClient(timeout=10 * UNIT) as http:
            negotiated = await http.post(f"{owner.base_url}{PATH}/negotiate?negotiateVersion=1")
            token = negotiated.json()["connectionToken"]
            first = await http.get(f"{other.base_url}{PATH}", params={"id": token})
            assert first.status_code == 200  # relayed: the owner started the connection
            os.kill(owner.process.pid, signal.SIGKILL)
            owner.process.wait()
            poll = await http.get(f"{other.base_url}{PATH}", params={"id": token})
            assert poll.status_code == 404
            assert poll.text == "No Connection with that ID"
            send = await http.post(f"{other.base_url}{PATH}", params={"id": token}, content=b"{}")
            assert send.status_code == 404
