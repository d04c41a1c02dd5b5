"""The backplane while Valkey is down and after it comes back (checklist 58,
docs/protocol.md §10.4).

A dedicated valkey-server (not the session one) is stopped and restarted on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest

from hero.caching import create_valkey_client
from hero.realtime.lifetime import BackplaneError, ValkeyLifetimeManager
from hero.realtime.protocol import InvocationMessage, JsonHubProtocol
from hero.realtime.testing.lifetime_kit import FakeConnection
from tests.support.servers import UNIT
from tests.support.valkey import free_port, start_valkey

pytestmark = pytest.mark.valkey


def note(text: str) -> InvocationMessage:
    return InvocationMessage(target="Note", arguments=(text,))


async def test_publishes_fail_during_an_outage_are_not_replayed_and_delivery_resumes() -> None:
    port = free_port()
    valkey = start_valkey(port)
    url = f"redis://127.0.0.1:{port}/0"
    clients = [create_valkey_client(url, socket_timeout=2 * UNIT) for _ in range(2)]
    prefix = f"outage:{uuid.uuid4().hex[:8]}:"
    one, two = (
        ValkeyLifetimeManager(
            client, hub_name="H", key_prefix=prefix, server_name=name, poll_interval=0.2
        )
        for client, name in zip(clients, ("one", "two"), strict=True)
    )
    await one.start()
    await two.start()
    try:
        local = FakeConnection("local", one, JsonHubProtocol())
        remote = FakeConnection("remote", two, JsonHubProtocol())
        await local.connect()
        await remote.connect()
        await one.send_all(note("before"))
        assert [m.arguments for m in await remote.wait_for(1, 5 * UNIT)] == [("before",)]

        valkey.stop()
        with pytest.raises(BackplaneError):
            await one.send_all(note("during"))
        # A failed send reached nobody, not even the local connection: retrying it (as the
        # outbox does) cannot duplicate it. A later send proves the local path still works.
        await one.send_connection("local", note("local only"))
        texts = [m.arguments[0] for m in await local.wait_for(2, 5 * UNIT)]
        assert texts == ["before", "local only"]

        valkey = start_valkey(port)
        # Delivery resumes once the readers have re-subscribed; nothing from the outage.
        async with asyncio.timeout(20 * UNIT):
            attempt = 0
            while not any(m.arguments[0].startswith("after") for m in remote.received):
                attempt += 1
                with contextlib.suppress(BackplaneError):  # the publisher is reconnecting
                    await one.send_all(note(f"after {attempt}"))
                await asyncio.sleep(0.1)  # pacing of the retries, not a synchronisation
        texts = [m.arguments[0] for m in remote.received]
        assert "during" not in texts
        assert texts[0] == "before"
    finally:
        await one.stop()
        await two.stop()
        for client in clients:
            await client.aclose()
        valkey.stop()
