"""The per-connection invocation rate (HubOptions.maximum_invocations_per_second), driven
over a real WebSocket with raw frames: only Invocations and StreamInvocations take tokens;
over the rate they get an error Completion (or are dropped when non-blocking) without
running, the connection stays open, and another connection is not affected."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hero.realtime import HubOptions, HubServer, HubServerOptions
from hero.realtime.runtime import LimitObserver
from hero.realtime.testing import ConformanceHub
from tests.integration.conftest import serve_in_process
from tests.integration.raw_peer import RawPeer, assert_healthy

# One token per 1000 s: within a test the bucket never refills, so exactly BURST
# invocations run, however fast or slow the machine is.
RATE = 0.001
BURST = 3
OVER_RATE = "HubException: Too many invocations: at most 0.001 per second (bursts of 3)."


class RateRefusals(LimitObserver):
    def __init__(self) -> None:
        self.answered: list[bool] = []

    def invocation_rate_limited(self, answered: bool) -> None:
        self.answered.append(answered)


@pytest.fixture
async def limited() -> AsyncIterator[tuple[str, RateRefusals]]:
    refusals = RateRefusals()
    hub = HubServer(
        ConformanceHub,
        options=HubServerOptions(
            hub=HubOptions(maximum_invocations_per_second=RATE, invocation_burst=BURST)
        ),
        limit_observer=refusals,
    )
    async with serve_in_process(hub) as base_url:
        yield base_url, refusals


async def collect(peer: RawPeer, wanted: set[str]) -> dict[str, list[dict[str, Any]]]:
    """Messages by invocation id until each id in `wanted` has its Completion."""
    seen: dict[str, list[dict[str, Any]]] = {}
    while not wanted <= {i for i, ms in seen.items() if ms[-1]["type"] == 3}:
        message = await peer.next_message()
        assert message["type"] != 7, f"the connection was closed: {message}"
        seen.setdefault(message["invocationId"], []).append(message)
    return seen


async def test_over_the_rate_invocations_are_refused_without_running(
    limited: tuple[str, RateRefusals], unit: float, caplog: pytest.LogCaptureFixture
) -> None:
    base_url, refusals = limited
    healthy = await RawPeer.connect(base_url, unit)
    peer = await RawPeer.connect(base_url, unit)
    await healthy.handshake()
    await peer.handshake()
    await assert_healthy(healthy)  # one of the healthy connection's own tokens
    # Pings, stream items, Completions and CancelInvocations take no token; the upload
    # (Sum), Echo and the stream (Counter) take the three there are; the rest are over.
    await peer.send_json(
        {"type": 6},
        {"type": 1, "invocationId": "sum", "target": "Sum", "arguments": [], "streamIds": ["up"]},
        *({"type": 2, "invocationId": "up", "item": n} for n in range(5)),
        {"type": 3, "invocationId": "up"},
        {"type": 6},
        {"type": 5, "invocationId": "nothing-to-cancel"},
        {"type": 1, "invocationId": "echo", "target": "Echo", "arguments": ["in budget"]},
        {"type": 4, "invocationId": "count", "target": "Counter", "arguments": [2, 0]},
        {"type": 1, "target": "Broadcast", "arguments": ["Note", "dropped"]},
        {"type": 1, "invocationId": "late", "target": "Echo", "arguments": ["over"]},
        {"type": 4, "invocationId": "late-stream", "target": "Counter", "arguments": [2, 0]},
    )
    seen = await collect(peer, {"sum", "echo", "count", "late", "late-stream"})
    assert seen["sum"] == [{"type": 3, "invocationId": "sum", "result": 10}]
    assert seen["echo"] == [{"type": 3, "invocationId": "echo", "result": "in budget"}]
    assert [m.get("item") for m in seen["count"]] == [0, 1, None]
    assert "error" not in seen["count"][-1]
    assert seen["late"] == [
        {
            "type": 3,
            "invocationId": "late",
            "error": f"An unexpected error occurred invoking 'Echo' on the server. {OVER_RATE}",
        }
    ]
    assert seen["late-stream"] == [
        {
            "type": 3,
            "invocationId": "late-stream",
            "error": f"An unexpected error occurred invoking 'Counter' on the server. {OVER_RATE}",
        }
    ]
    assert refusals.answered == [False, True, True]  # the Broadcast dropped, two answered

    # The other connection has its own bucket; the dropped Broadcast never ran, so the
    # first Note anyone gets is this one.
    await healthy.send_invocation("Broadcast", "Note", "probe", invocation_id="probe")
    for receiver in (healthy, peer):
        note = await receiver.next_message()
        assert note == {"type": 1, "target": "Note", "arguments": ["probe"]}
    await healthy.completion("probe")  # sent once the Note was queued for everyone

    # Still open, still over the rate.
    refused = await peer.invoke("Echo", "again", invocation_id="again")
    assert refused["error"].endswith(OVER_RATE)
    assert refusals.answered == [False, True, True, True]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    await peer.close()
    await healthy.close()


async def test_without_a_rate_a_burst_of_invocations_all_run(unit: float) -> None:
    """The library default (0): no limit, however many invocations arrive at once."""
    hub = HubServer(ConformanceHub)
    assert hub.options.hub.maximum_invocations_per_second == 0
    async with serve_in_process(hub) as base_url:
        peer = await RawPeer.connect(base_url, unit)
        await peer.handshake()
        ids = [f"e{n}" for n in range(100)]
        await peer.send_json(
            *({"type": 1, "invocationId": i, "target": "Echo", "arguments": [i]} for i in ids)
        )
        seen = await collect(peer, set(ids))
        assert all(seen[i] == [{"type": 3, "invocationId": i, "result": i}] for i in ids)
        await peer.close()
