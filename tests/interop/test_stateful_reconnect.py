"""Stateful reconnect with the official client (checklist 55, 56): a WebSocket dropped
without a close frame is resumed on a new socket; no message is lost or duplicated."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.servers import RunningServer

pytestmark = pytest.mark.interop

HERE = Path(__file__).parent


def run_scenario(node: str, url: str, protocol: str, unit: float) -> dict[str, object]:
    completed = subprocess.run(
        [node, str(HERE / "stateful.mjs"), url, protocol, str(int(30_000 * unit))],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=60 * unit,
        check=False,
    )
    for line in completed.stdout.splitlines():
        if line.startswith("INTEROP-RESULT "):
            result: dict[str, object] = json.loads(line.removeprefix("INTEROP-RESULT "))
            return result
    raise AssertionError(f"no result from node:\n{completed.stdout}\n{completed.stderr}")


@pytest.mark.parametrize("protocol", ["json", "messagepack"])
def test_checklist_55_56_dropped_socket_resumes_without_loss_or_duplicates(
    conformance_server: RunningServer, node: str, unit: float, protocol: str
) -> None:
    url = conformance_server.base_url + "/conformance"
    result = run_scenario(node, url, protocol, unit)
    assert "error" not in result, result
    assert result["received"] == list(range(11))
    assert result["echo"] == "after resume"
    assert result["sameConnectionId"] is True
    assert result["reconnecting"] == 0  # resumed, not a new connection
    assert result["state"] == "Connected"


def test_checklist_6_stateful_reconnect_offered_only_when_asked(
    conformance_server: RunningServer, unit: float
) -> None:
    base = conformance_server.base_url + "/conformance/negotiate"
    with httpx.Client(timeout=10 * unit) as http:
        asked = http.post(base, params={"negotiateVersion": "1", "useStatefulReconnect": "true"})
        plain = http.post(base, params={"negotiateVersion": "1"})
        old = http.post(base, params={"useStatefulReconnect": "true"})
    assert asked.json()["useStatefulReconnect"] is True
    assert "useStatefulReconnect" not in plain.json()
    assert "useStatefulReconnect" not in old.json()  # version 0 has no connection token


def run_drops(
    node: str, url: str, protocol: str, *, drops: int, per_round: int, unit: float
) -> Any:
    timeout_ms = str(int(60_000 * unit))
    script = str(HERE / "stateful_drops.mjs")
    completed = subprocess.run(
        [node, script, url, protocol, str(drops), str(per_round), timeout_ms],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=90 * unit,
        check=False,
    )
    for line in completed.stdout.splitlines():
        if line.startswith("INTEROP-RESULT "):
            return json.loads(line.removeprefix("INTEROP-RESULT "))
    raise AssertionError(f"no result from node:\n{completed.stdout}\n{completed.stderr}")


@pytest.mark.parametrize("protocol", ["json", "messagepack"])
def test_many_forced_socket_drops_lose_and_duplicate_nothing(
    conformance_server: RunningServer, node: str, unit: float, protocol: str
) -> None:
    """docs/reliability.md: the official client's stateful reconnect across repeated drops
    (each while the next round of messages is being sent to it)."""
    url = conformance_server.base_url + "/conformance"
    result = run_drops(node, url, protocol, drops=10, per_round=20, unit=unit)
    assert "error" not in result, result
    assert result["sent"] == 220
    assert (result["lost"], result["duplicated"], result["outOfOrder"]) == (0, 0, 0)
    assert result["received"] == 220
    assert result["sameConnectionId"] is True
    assert result["reconnecting"] == 0
    assert result["state"] == "Connected"
