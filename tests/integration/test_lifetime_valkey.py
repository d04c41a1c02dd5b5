"""ValkeyLifetimeManager: the lifetime-manager conformance suite on a real valkey-server,
one and two instances (each with its own client) on one backplane, plus its own checks."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hero.caching import create_valkey_client
from hero.realtime.lifetime import HubLifetimeManager, ValkeyLifetimeManager
from hero.realtime.protocol import InvocationMessage, JsonHubProtocol
from hero.realtime.testing.lifetime_conformance import FakeConnection, LifetimeManagerConformance
from tests.support.servers import UNIT
from tests.support.valkey import ValkeyEndpoint

pytest_plugins = ("tests.support.valkey_fixtures",)
pytestmark = pytest.mark.valkey


class TestValkeyLifetimeManager(LifetimeManagerConformance):
    timeout_unit = UNIT

    @pytest.fixture(autouse=True)
    async def _valkey(self, valkey_server: ValkeyEndpoint) -> AsyncIterator[None]:
        self._clients: list[Any] = []
        self._url = valkey_server.url
        self._prefix = f"test:{uuid.uuid4().hex[:12]}:"
        yield
        for client in self._clients:
            await client.aclose()

    async def make_cluster(self, instances: int) -> list[HubLifetimeManager]:
        managers: list[HubLifetimeManager] = []
        for index in range(instances):
            client = create_valkey_client(self._url, socket_timeout=10 * UNIT)
            self._clients.append(client)
            managers.append(
                ValkeyLifetimeManager(
                    client,
                    hub_name="ConformanceHub",
                    key_prefix=self._prefix,
                    server_name=f"instance-{index}",
                    ack_timeout=5 * UNIT,
                    poll_interval=0.5,
                )
            )
        return managers


async def _publish_calls(client: Any) -> int:
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_publish", {}).get("calls", 0))


async def test_local_targets_never_touch_valkey(valkey_server: ValkeyEndpoint) -> None:
    """Sends to a local connection are delivered without a PUBLISH (Valkey's own command
    statistics count them); a send to a remote id does publish."""
    client = create_valkey_client(valkey_server.url, socket_timeout=10 * UNIT)
    manager = ValkeyLifetimeManager(client, hub_name="H", key_prefix=f"t:{uuid.uuid4().hex}:")
    await manager.start()
    try:
        connection = FakeConnection("local-1", manager, JsonHubProtocol())
        await connection.connect()
        before = await _publish_calls(client)
        await manager.send_connection("local-1", InvocationMessage("Hi", ("x",)))
        await manager.send_connections(["local-1"], InvocationMessage("Hi", ("y",)))
        received = await connection.wait_for(2, 5 * UNIT)
        assert [m.arguments for m in received] == [("x",), ("y",)]
        assert await _publish_calls(client) == before
        await manager.send_connection("elsewhere", InvocationMessage("Hi", ("z",)))
        assert await _publish_calls(client) == before + 1
        await connection.disconnect()
    finally:
        await manager.stop()
        await client.aclose()
