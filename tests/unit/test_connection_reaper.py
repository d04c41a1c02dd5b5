"""The connection registry starts and reaps connections by their lifecycle state."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from hero.realtime.connections.registry import ConnectionManager
from hero.realtime.transports import ANONYMOUS, Connection, ConnectionState, TransportKind

TIMEOUT = 15.0
S = ConnectionState


async def read_to_the_end(connection: Connection) -> None:
    while await connection.receive() is not None:
        pass


@pytest.fixture
async def manager() -> AsyncIterator[ConnectionManager]:
    registry = ConnectionManager(
        read_to_the_end, disconnect_timeout=TIMEOUT, inbound_limit=1024, outbound_limit=1024
    )
    try:
        yield registry
    finally:
        await registry.aclose()


def started(manager: ConnectionManager, transport: TransportKind) -> Connection:
    connection = manager.create(ANONYMOUS)
    assert manager.start(connection, transport)
    return connection


async def test_start_moves_a_negotiated_connection_once(manager: ConnectionManager) -> None:
    polling = started(manager, TransportKind.LONG_POLLING)
    assert polling.lifecycle.state is S.WAITING_FOR_POLL
    socket = started(manager, TransportKind.WEBSOCKETS)
    assert socket.lifecycle.state is S.ACTIVE
    assert not manager.start(socket, TransportKind.LONG_POLLING)  # already started
    assert socket.transport is TransportKind.WEBSOCKETS
    gone = manager.create(ANONYMOUS)
    manager.dispose(gone)
    assert not manager.start(gone, TransportKind.WEBSOCKETS)
    assert (gone.lifecycle.state, gone.transport) == (S.DISPOSED, None)


async def test_the_reaper_takes_connections_waiting_for_their_client_only(
    manager: ConnectionManager,
) -> None:
    negotiated = manager.create(ANONYMOUS)
    early_post = manager.create(ANONYMOUS)
    early_post.lifecycle.request_started()
    waiting = started(manager, TransportKind.LONG_POLLING)
    polling = started(manager, TransportKind.LONG_POLLING)
    polling.lifecycle.begin_poll()
    socket = started(manager, TransportKind.WEBSOCKETS)
    stream = started(manager, TransportKind.SERVER_SENT_EVENTS)
    suspended = started(manager, TransportKind.WEBSOCKETS)
    suspended.lifecycle.socket_lost()
    resuming = started(manager, TransportKind.WEBSOCKETS)
    resuming.lifecycle.socket_lost()
    assert resuming.lifecycle.begin_resume()

    manager.reap(time.monotonic() + TIMEOUT / 2)  # nobody idle long enough yet
    assert len(manager) == 8

    manager.reap(time.monotonic() + TIMEOUT)
    reaped = {negotiated, waiting, suspended}
    for connection in (negotiated, early_post, waiting, polling, socket, stream, suspended):
        assert connection.lifecycle.disposed is (connection in reaped)
    assert resuming.lifecycle.state is S.RESUMING
    assert len(manager) == 5
