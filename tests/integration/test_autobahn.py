"""The Autobahn core cases (1.* to 7.*) against the WebSocket stack `hero serve` runs.

kosoku drives the Autobahn TestSuite case files against `tests/support/ws_echo.py`, an echo
server under `hero serve`'s uvicorn configuration (hero's WebSocket protocol class, built on
uvicorn's websockets sans-I/O one), through the direct read and write extensions the hub
uses on that class ("hero-direct"), and under the same configuration with ws "wsproto". Any
failed case or any log line fails the test, except the known upstream fault listed below,
which must still occur. The full run with its
figures is `bench/autobahn.py` (docs/reliability.md).
"""

from __future__ import annotations

import asyncio

import kosoku
import pytest

from tests.support.servers import UNIT, launch

CORE = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*"]

# What websockets' sans-I/O protocol (under hero's WebSocket protocol class, what
# `hero serve` runs) does wrong. It must still happen, so the test notices an upgrade that
# fixes it. `ws="wsproto"` (also checked below) and `ws="websockets"` do not have it.
HERO_UPSTREAM_FAILURES = {
    # websockets' protocol.py (CLOSE branch of recv_frame) fails the connection with 1002
    # "incomplete fragmented message" when a Close frame arrives between the fragments of a
    # message; RFC 6455 5.4 allows control frames there, the case expects 1000 back.
    "7.1.5",
}


def _describe(result: kosoku.CaseResult) -> str:
    return (
        f"{result.case_id}: behavior={result.behavior.value} "
        f"close={result.behavior_close.value} ({result.result_close}); expected close "
        f"{result.expected_close}, got {result.remote_close_code} {result.remote_close_reason!r}"
    )


@pytest.mark.parametrize("ws", ["hero", "hero-direct", "wsproto"])
async def test_autobahn_core_cases(ws: str) -> None:
    with launch(["-m", "tests.support.ws_echo", "--port", "0", "--ws", ws]) as server:
        url = server.base_url.replace("http://", "ws://")
        try:
            results = await asyncio.wait_for(
                kosoku.run_fuzzingclient(url, CORE, concurrency=2), timeout=300 * UNIT
            )
        except kosoku.FailureError as failure:
            results = failure.results
        log = server.log()
    assert len(results) == 246  # every core case ran
    failed = {r.case_id: r for r in results if not r.passed}
    known = HERO_UPSTREAM_FAILURES if ws.startswith("hero") else set()
    unexpected = [_describe(r) for case, r in failed.items() if case not in known]
    assert not unexpected, "\n".join(unexpected)
    assert set(failed) == known, "an upstream failure now passes: update the list"
    # uvicorn alone logged an ERROR traceback per non-UTF-8 text frame (section 6); hero's
    # protocol class closes with 1007 and logs at INFO, below what this server prints.
    lines = [line for line in log.splitlines() if "listening on" not in line]
    assert not lines, log
