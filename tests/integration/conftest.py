"""Fixtures for the integration tests."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from hero.platform.http_server import HttpLimits, server_config
from hero.realtime import EndpointOptions, HubOptions, HubRoute, HubServer, HubServerOptions
from hero.realtime.testing import ConformanceHub
from tests.conftest import missing_tool
from tests.integration.js.agent import NodeAgent, interop_installed
from tests.integration.raw_peer import RawPeer, assert_healthy
from tests.support.servers import UNIT, RunningServer

# The short intervals of `short_timeout_server`, in seconds (multiples of UNIT so a slow
# machine that raises HERO_TEST_TIMEOUT_UNIT stretches them along with every wait).
SHORT_KEEP_ALIVE = 0.5 * UNIT
SHORT_CLIENT_TIMEOUT = 1.5 * UNIT
SHORT_HANDSHAKE_TIMEOUT = 1.0 * UNIT
SHORT_DISCONNECT_TIMEOUT = 1.0 * UNIT
SHORT_LONG_POLL_TIMEOUT = 1.0 * UNIT


@dataclass
class InProcessServer:
    """A hub server running in the test's own event loop."""

    base_url: str
    hub: HubServer

    @property
    def hub_url(self) -> str:
        return self.base_url + "/conformance"

    @property
    def ws_url(self) -> str:
        return "ws" + self.hub_url.removeprefix("http")


@asynccontextmanager
async def serve_in_process(hub: HubServer, path: str = "/conformance") -> AsyncIterator[str]:
    """Serve `hub` at `path` with uvicorn on a free loopback port; yields the base URL."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with hub.lifespan():
            yield

    app = Starlette(routes=[HubRoute(path, hub)], lifespan=lifespan)
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto
    # is IPPROTO_TCP; with proto 0 every HTTP response (headers, then body) waits ~40 ms
    # for the client's delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    # hero's uvicorn configuration (its protocol classes, with the direct read, write and
    # detach extensions the hub uses), with no hub message limit (a 16 MiB socket bound).
    config = server_config(
        app, limits=HttpLimits(), maximum_receive_message_size=None, log_level="warning"
    )
    config.timeout_graceful_shutdown = max(1, round(3 * UNIT))
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="in-process-uvicorn")
    try:
        async with asyncio.timeout(20 * UNIT):
            while not server.started:
                if task.done():
                    task.result()  # surfaces the startup error
                    raise RuntimeError("uvicorn stopped during startup")
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        try:
            async with asyncio.timeout(15 * UNIT):
                await task
        finally:
            sock.close()


@pytest.fixture
async def short_timeout_server() -> AsyncIterator[InProcessServer]:
    """ConformanceHub with short keep-alive, client, handshake, disconnect and poll timeouts.

    The default intervals (15 s / 30 s / 90 s) are too slow for tests; this server runs in
    the test's event loop with the values of SHORT_* above. Hub URL: `.hub_url`.
    """
    hub = HubServer(
        ConformanceHub,
        options=HubServerOptions(
            hub=HubOptions(
                keep_alive_interval=SHORT_KEEP_ALIVE,
                client_timeout_interval=SHORT_CLIENT_TIMEOUT,
                handshake_timeout=SHORT_HANDSHAKE_TIMEOUT,
            ),
            endpoint=EndpointOptions(
                disconnect_timeout=SHORT_DISCONNECT_TIMEOUT,
                long_poll_timeout=SHORT_LONG_POLL_TIMEOUT,
            ),
        ),
    )
    async with serve_in_process(hub) as base_url:
        yield InProcessServer(base_url, hub)


# --------------------------------------------------------------------------------------
# Raw-client fixtures of the test_bad_input_* modules (helpers in raw_peer.py)
# --------------------------------------------------------------------------------------


@pytest.fixture
async def healthy(conformance_server: RunningServer, unit: float) -> AsyncIterator[RawPeer]:
    """A JSON WebSocket connection opened (and proven working) before the bad input."""
    peer = await RawPeer.connect(conformance_server.base_url, unit)
    await peer.handshake()
    await assert_healthy(peer)
    yield peer
    await peer.close()


@pytest.fixture
async def short_healthy(
    short_timeout_server: InProcessServer, unit: float
) -> AsyncIterator[RawPeer]:
    """Like `healthy`, on the short-timeout server (it never pings, so never times out)."""
    peer = await RawPeer.connect(short_timeout_server.base_url, unit)
    await peer.handshake()
    await assert_healthy(peer)
    yield peer
    await peer.close()


@pytest.fixture
async def http(conformance_server: RunningServer, unit: float) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=conformance_server.base_url, timeout=10 * unit, trust_env=False
    ) as client:
        yield client


@pytest.fixture
async def short_http(
    short_timeout_server: InProcessServer, unit: float
) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=short_timeout_server.base_url, timeout=10 * unit, trust_env=False
    ) as client:
        yield client


# Tests request their server fixtures *before* `agent`: fixtures are torn down in reverse,
# so the Node client closes its connections while the servers are still up.
@pytest.fixture
async def agent(node: str, unit: float) -> AsyncIterator[NodeAgent]:
    """A Node process driving the official SignalR JS client (tests/integration/js)."""
    if not interop_installed():
        missing_tool("tests/interop/node_modules is not installed (npm ci in tests/interop)")
    async with NodeAgent.start(node, unit) as running:
        yield running
