"""Cluster behaviour end to end (docs/platform.md §§1 and 5, docs/protocol.md §10): several
real hero processes on one real valkey-server, driven by the official JS client under Node.

- two `hero conformance-server` processes form a cluster (broadcast, groups, SendToOthers,
  across instances, transports and protocols);
- two platform instances (`tests/integration/platform_app.py`, i.e. `create_app`) share the
  `user:` groups, presence (`PresenceChanged`, `GET /api/v1/realtime/presence`) and the typing
  throttle;
- a SIGKILLed instance's users go offline once their presence entries expire.

Absence of a message is always proven with a follow-up probe, never with a sleep: a probe is
sent from a connection on *every* instance after the call that could have produced the
unwanted message has returned, and the test waits for every probe at every connection it
checks. Delivery to one connection is ordered per origin (a local send is queued before the
call returns; two publications made one after the other by one instance reach the other
instances' single subscriber connection in that order), so once the probes have arrived
anything sent before them has arrived too.

Isolation. The platform's key prefix is fixed (`hero:`), so each test gets its own Valkey
logical database (`valkey_db`, flushed before use): presence entries and their sweep index,
and the typing-throttle keys, are never shared with another test or module (e.g. the sweep of
one test's surviving instance never sees entries another test's killed instance left
behind). Pub/sub, however, ignores the database number: the backplane channels
(`hero:signalr:<Hub>:...`) are server-wide. Pub/sub isolation therefore comes from (a) every
server of a test being stopped before the next test starts (servers are function-scoped;
pytest runs one test at a time per process, and each xdist worker would start its own
valkey-server), and (b) random names for everything that names a channel: group names,
tenant ids, user ids, channel ids (connection ids are random anyway). Each instance also gets
its own throwaway SQLite file: the database plays no part here and two processes migrating one
SQLite file at the same moment could race.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import valkey

from tests.integration.js.agent import NodeAgent
from tests.integration.platform_app import (
    CHANNELS_ENV,
    SIGNING_KEY,
    clean_environ,
    mint,
    platform_app,
)
from tests.support.servers import UNIT, RunningServer, run_hero
from tests.support.valkey import ValkeyEndpoint

pytest_plugins = ("tests.support.valkey_fixtures",)
pytestmark = [pytest.mark.valkey, pytest.mark.interop]

HUB = "/realtime/hub"
CONFORMANCE = "/conformance"
PRESENCE_URL = "/api/v1/realtime/presence"
PRESENCE = "PresenceChanged"
TYPING = "ChatTypingStarted"
PROBE = "Probe"
MSG = "Msg"
PLATFORM_TARGETS = [PRESENCE, TYPING, PROBE]

# Databases 0 and 1 are used by other modules; 16 is valkey's default number of databases.
_DATABASES = itertools.cycle(range(10, 16))

# The crash test's presence TTL (heartbeat = TTL / 3): a crashed instance's users go offline
# within about TTL + one heartbeat.
SHORT_PRESENCE_TTL = 2.0 * UNIT


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture
def valkey_db(valkey_server: ValkeyEndpoint) -> str:
    """`CachingOptions:Redis` URL of a logical database only this test uses (flushed)."""
    database = next(_DATABASES)
    url = f"redis://{valkey_server.host}:{valkey_server.port}/{database}"
    client: Any = valkey.Valkey.from_url(url, socket_timeout=10 * UNIT)
    try:
        available = int(client.config_get("databases")["databases"])
        assert database < available, f"valkey-server has only {available} databases"
        client.flushdb()
    finally:
        client.close()
    return url


def _print_logs(servers: Mapping[str, RunningServer]) -> None:
    """Shown by pytest only when the test failed (captured teardown output)."""
    for name, server in servers.items():
        print(f"----- {name} ({server.base_url}) log -----\n{server.log()}")


@pytest.fixture
def conformance_cluster(valkey_db: str) -> Iterator[tuple[RunningServer, RunningServer]]:
    """Two `hero conformance-server` processes on the test's Valkey database."""
    env = {"CachingOptions__Redis": valkey_db}
    with run_hero(["conformance-server"], env) as one, run_hero(["conformance-server"], env) as two:
        yield one, two
        _print_logs({"instance 1": one, "instance 2": two})


@dataclass(frozen=True)
class Person:
    id: uuid.UUID
    tenant: str

    @property
    def uid(self) -> str:
        return str(self.id)

    def token(self) -> str:
        return mint(self.id, tenant=self.tenant, name=f"user {self.id.hex[:6]}")


def new_tenant() -> str:
    return f"tenant-{uuid.uuid4().hex[:12]}"


class PlatformCluster:
    """Platform instances (the create_app test app) sharing one Valkey database."""

    def __init__(self, valkey_url: str, folder: Path, channels: Mapping[uuid.UUID, list[Person]]):
        self._valkey_url = valkey_url
        self._folder = folder
        self._channels = json.dumps(
            {str(channel): [p.uid for p in members] for channel, members in channels.items()}
        )
        self._stack = ExitStack()
        self.servers: dict[str, RunningServer] = {}

    def start(self, name: str, **settings: str) -> RunningServer:
        env = clean_environ(
            {
                "JwtOptions__SigningKey": SIGNING_KEY,
                "CachingOptions__Redis": self._valkey_url,
                "DatabaseOptions__ConnectionString": (
                    f"sqlite+aiosqlite:///{self._folder / f'{name}.db'}"
                ),
                CHANNELS_ENV: self._channels,
                **settings,
            }
        )
        server: RunningServer = self._stack.enter_context(platform_app(env))
        self.servers[name] = server
        return server

    def close(self) -> None:
        try:
            self._stack.close()
        finally:
            _print_logs(self.servers)


@pytest.fixture
def platform_cluster(
    valkey_db: str, tmp_path: Path
) -> Iterator[Callable[[Mapping[uuid.UUID, list[Person]]], PlatformCluster]]:
    """A factory: `platform_cluster({channel: [members]})`; start instances with `.start`."""
    clusters: list[PlatformCluster] = []

    def make(channels: Mapping[uuid.UUID, list[Person]]) -> PlatformCluster:
        cluster = PlatformCluster(valkey_db, tmp_path, channels)
        clusters.append(cluster)
        return cluster

    yield make
    for cluster in clusters:
        cluster.close()


# ------------------------------------------------------------------------------ helpers


async def platform_connect(
    agent: NodeAgent, name: str, server: RunningServer, person: Person
) -> str:
    """Connect and invoke WhoAmI: invocations run only after on_connected, so by then the
    connection is in its user:/tenant:/channel: groups and its presence was recorded."""
    connection_id = await agent.connect(
        name, server.base_url + HUB, tokens=[person.token()], targets=PLATFORM_TARGETS
    )
    who = await agent.invoke(name, "WhoAmI")
    assert (who["userId"], who["tenantId"]) == (person.uid, person.tenant)
    return connection_id


async def platform_probe(agent: NodeAgent, senders: list[str], to: Mapping[str, Person]) -> None:
    """From each sender (one per instance), a fresh Probe to the user of every connection in
    `to` (`{connection: person}`); returns once every connection has every probe."""
    markers = []
    for sender in senders:
        marker = f"probe-{uuid.uuid4().hex}"
        markers.append(marker)
        for user in {p.uid for p in to.values()}:
            await agent.invoke(sender, "SendToUser", user, PROBE, marker)
    for connection in to:
        for marker in markers:
            await agent.next_message(connection, PROBE, where=equals(marker))


async def presence_of(server: RunningServer, token: str, *people: Person) -> dict[str, bool]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10 * UNIT) as client:
        response = await client.get(
            PRESENCE_URL,
            params={"userIds": ",".join(p.uid for p in people)},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 200, response.text
    return {item["userId"]: item["online"] for item in response.json()}


async def metric(server: RunningServer, name: str) -> float:
    """Sum of the samples of one metric (all label sets) from the instance's /metrics."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10 * UNIT) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    total = 0.0
    for line in response.text.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample == name or sample.startswith(name + "{"):
            total += float(value)
    return total


async def wait_live_connections(server: RunningServer, expected: int) -> None:
    """Wait until the instance has `expected` open hub connections. The gauge drops only
    after on_disconnected (presence bookkeeping and announcement) has finished."""
    deadline = time.monotonic() + 10 * UNIT
    while (live := await metric(server, "hero_connections")) != expected:
        assert time.monotonic() < deadline, f"{live} connections, expected {expected}"
        await _tick()


async def _tick() -> None:
    await asyncio.sleep(0.05 * UNIT)  # one poll interval of a bounded wait loop


def presence_events(agent: NodeAgent, connection: str, person: Person) -> list[bool]:
    return [p["online"] for p in agent.args_of(connection, PRESENCE) if p["userId"] == person.uid]


def equals(value: Any) -> Callable[[Any], bool]:
    return lambda arg: arg == value


def is_presence(person: Person, online: bool) -> Callable[[Any], bool]:
    return lambda arg: arg == {"userId": person.uid, "online": online}


# ------------------------------------------------------------------ 1. conformance servers


async def test_two_conformance_servers_on_one_valkey_form_a_cluster(
    conformance_cluster: tuple[RunningServer, RunningServer], agent: NodeAgent
) -> None:
    one, two = conformance_cluster
    clients = {  # name: (instance, transport, protocol)
        "A": (one, "WebSockets", None),
        "B": (two, "WebSockets", None),
        "M": (one, "WebSockets", "messagepack"),
        "L": (two, "LongPolling", None),
    }
    for name, (server, transport, protocol) in clients.items():
        await agent.connect(
            name,
            server.base_url + CONFORMANCE,
            transport=transport,
            protocol=protocol,
            targets=[MSG],
        )
    everyone = list(clients)

    def got(name: str) -> list[Any]:
        return agent.args_of(name, MSG)

    async def arrives(value: str, *names: str) -> None:
        for name in names:
            await agent.next_message(name, MSG, where=equals(value))

    async def probe() -> None:
        """A Broadcast from each instance, received by everyone: earlier sends are in."""
        markers = [f"probe-{uuid.uuid4().hex}" for _ in range(2)]
        await agent.invoke("A", "Broadcast", MSG, markers[0])
        await agent.invoke("B", "Broadcast", MSG, markers[1])
        for marker in markers:
            await arrives(marker, *everyone)

    # Broadcast from either instance reaches every connection, once, whatever its transport
    # and protocol (M decodes MessagePack relayed from the other instance).
    await agent.invoke("B", "Broadcast", MSG, "from-two")
    await arrives("from-two", *everyone)
    await agent.invoke("A", "Broadcast", MSG, "from-one")
    await arrives("from-one", *everyone)

    # Groups across instances: A (instance 1) and L (instance 2, long polling) join.
    group = f"g-{uuid.uuid4().hex}"  # unique: pub/sub channels are shared by every database
    assert await agent.invoke("A", "JoinGroup", group) is None
    assert await agent.invoke("L", "JoinGroup", group) is None
    await agent.invoke("B", "SendToGroup", group, MSG, "group-1")
    await arrives("group-1", "A", "L")

    # SendToOthers from instance 2: everyone but the caller.
    await agent.invoke("B", "SendToOthers", MSG, "others")
    await arrives("others", "A", "M", "L")

    # After A leaves, group sends no longer reach it (L, still a member, proves they are sent).
    assert await agent.invoke("A", "LeaveGroup", group) is None
    await agent.invoke("B", "SendToGroup", group, MSG, "group-2")
    await arrives("group-2", "L")

    await probe()
    for name in everyone:
        assert got(name).count("from-two") == 1, (name, got(name))
        assert got(name).count("from-one") == 1, (name, got(name))
    assert got("A").count("group-1") == 1
    assert got("L").count("group-1") == 1
    assert "group-1" not in got("M") + got("B")  # non-members, on either instance
    assert "others" not in got("B")  # not to the caller
    assert [got(n).count("others") for n in ("A", "M", "L")] == [1, 1, 1]
    assert "group-2" not in got("A") + got("M") + got("B")
    assert got("L").count("group-2") == 1


# ------------------------------------------------------------------ 2. platform instances


async def test_platform_instances_share_user_groups_presence_and_typing_throttle(
    platform_cluster: Callable[[Mapping[uuid.UUID, list[Person]]], PlatformCluster],
    valkey_db: str,
    agent: NodeAgent,
) -> None:
    tenant = new_tenant()
    u, observer, sender, w1, w2 = (Person(uuid.uuid4(), tenant) for _ in range(5))
    channel = uuid.uuid4()
    cluster = platform_cluster({channel: [u, w1, w2]})
    one, two = cluster.start("one"), cluster.start("two")

    await platform_connect(agent, "O", one, observer)  # observer, instance 1
    await platform_connect(agent, "S", two, sender)  # third connection, instance 2
    await platform_connect(agent, "W1", one, w1)  # channel members, one per instance
    await platform_connect(agent, "W2", two, w2)
    senders = ["O", "S"]  # one probe sender per instance
    bystanders = {"O": observer, "S": sender, "W1": w1, "W2": w2}

    # U's first connection anywhere (instance 2): the observer on instance 1 sees it online.
    await platform_connect(agent, "U2", two, u)
    await agent.next_message("O", PRESENCE, where=is_presence(u, True))
    # U's second device, on instance 1: U is already online, nothing is announced.
    await platform_connect(agent, "U1", one, u)
    await platform_probe(agent, senders, {"O": observer})
    assert presence_events(agent, "O", u) == [True]
    for server in (one, two):
        assert await presence_of(server, observer.token(), u, observer) == {
            u.uid: True,
            observer.uid: True,
        }

    # SendToUser (the user: group) from a third connection reaches both devices, once.
    await agent.invoke("S", "SendToUser", u.uid, PROBE, "to-u")
    for device in ("U1", "U2"):
        await agent.next_message(device, PROBE, where=equals("to-u"))

    # Typing on instance 1, then at once on instance 2 (U's other device): one claim wins.
    assert await agent.invoke("U1", "Typing", str(channel)) is None
    assert await agent.invoke("U2", "Typing", str(channel)) is None
    await platform_probe(agent, senders, {**bystanders, "U1": u, "U2": u})
    started = {"channelId": str(channel), "userId": u.uid}
    for member in ("W1", "W2"):
        assert agent.args_of(member, TYPING) == [started], member
    assert agent.args_of("U2", TYPING) == [started]  # U1's event reaches U's other device
    assert agent.args_of("U1", TYPING) == []  # ... and U2's call was throttled
    assert agent.args_of("O", TYPING) == agent.args_of("S", TYPING) == []  # not members
    assert await metric(one, "hero_typing_throttle_hits_total") == 0
    assert await metric(two, "hero_typing_throttle_hits_total") == 1
    claim_key = f"chat:typing:{channel}:{u.uid}"  # exactly docs/platform.md's key, own database
    client: Any = valkey.Valkey.from_url(valkey_db, socket_timeout=10 * UNIT)
    try:
        assert client.pttl(claim_key) > 0
        assert client.exists(f"hero:{claim_key}") == 0
    finally:
        client.close()

    for connection in ("U1", "U2"):
        assert agent.args_of(connection, PROBE).count("to-u") == 1
    for connection in bystanders:
        assert "to-u" not in agent.args_of(connection, PROBE)

    # U's device on instance 2 closes: U is still online through instance 1.
    await agent.stop("U2")
    await wait_live_connections(two, 2)  # S, W2: U2's on_disconnected has finished
    await platform_probe(agent, senders, {"O": observer, "W1": w1})
    assert presence_events(agent, "O", u) == [True]
    for server in (one, two):
        assert (await presence_of(server, observer.token(), u))[u.uid] is True

    # U's last connection (instance 1) closes: offline, seen from both instances.
    await agent.stop("U1")
    await agent.next_message("O", PRESENCE, where=is_presence(u, False))
    await agent.next_message("W2", PRESENCE, where=is_presence(u, False))
    for server in (one, two):
        assert (await presence_of(server, observer.token(), u))[u.uid] is False
    await platform_probe(agent, senders, {"O": observer, "W2": w2})
    assert presence_events(agent, "O", u) == [True, False]
    assert presence_events(agent, "W2", u) == [True, False]


# ------------------------------------------------------------------ 3. a crashed instance


async def test_users_of_a_killed_instance_go_offline_after_the_presence_ttl(
    platform_cluster: Callable[[Mapping[uuid.UUID, list[Person]]], PlatformCluster],
    agent: NodeAgent,
) -> None:
    tenant = new_tenant()
    observer, v, late = (Person(uuid.uuid4(), tenant) for _ in range(3))
    cluster = platform_cluster({})
    short_ttl = {"Realtime__PresenceTtlSeconds": str(SHORT_PRESENCE_TTL)}
    one = cluster.start("one", **short_ttl)
    two = cluster.start("two", **short_ttl)

    await platform_connect(agent, "O", one, observer)
    await platform_connect(agent, "V", two, v)
    await agent.next_message("O", PRESENCE, where=is_presence(v, True))
    assert (await presence_of(one, observer.token(), v))[v.uid] is True

    two.process.kill()  # SIGKILL: no on_disconnected, no cleanup of V's presence entry
    two.process.wait(10 * UNIT)
    killed_at = time.monotonic()

    offline = await agent.next_message(
        "O", PRESENCE, where=is_presence(v, False), timeout=SHORT_PRESENCE_TTL + 10 * UNIT
    )
    assert offline.at - killed_at < SHORT_PRESENCE_TTL + 5 * UNIT
    assert await presence_of(one, observer.token(), v, observer) == {
        v.uid: False,
        observer.uid: True,  # the survivor's heartbeat keeps its own entries alive
    }

    # Once, and nobody else went offline: a new user's arrival (announced by the only
    # remaining instance, after the sweep) is the follow-up probe.
    await platform_connect(agent, "N", one, late)
    await agent.next_message("O", PRESENCE, where=is_presence(late, True))
    assert presence_events(agent, "O", v) == [True, False]
    assert [p for p in agent.args_of("O", PRESENCE) if not p["online"]] == [
        {"userId": v.uid, "online": False}
    ]


# ------------------------------------------------------------------ 4. stopping an instance


async def test_a_stopped_instance_ends_its_long_polling_connections_promptly(
    conformance_cluster: tuple[RunningServer, RunningServer], agent: NodeAgent
) -> None:
    one, two = conformance_cluster
    await agent.connect("A", one.base_url + CONFORMANCE, transport="WebSockets", targets=[MSG])
    await agent.connect("L", two.base_url + CONFORMANCE, transport="LongPolling", targets=[MSG])
    await agent.invoke("A", "Broadcast", MSG, "before")
    await agent.next_message("L", MSG, where=equals("before"))  # L is polling

    two.process.terminate()  # SIGTERM: a graceful stop, e.g. a rolling deployment
    try:
        try:
            await asyncio.to_thread(two.process.wait, 5 * UNIT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"instance 2 still running {5 * UNIT:g} s after SIGTERM:\n{two.log()}")
        await agent.lifecycle("L", "close")
    finally:
        if two.process.poll() is None:
            two.process.kill()  # do not wait out the poll in the fixture's teardown
            two.process.wait(10 * UNIT)
