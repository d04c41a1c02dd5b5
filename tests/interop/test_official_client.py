"""The official SignalR JS client (@microsoft/signalr 10.0.11 + msgpack protocol) against hero.

`scenarios.mjs` runs many scenarios in ONE node process per transport/protocol combination and
prints one JSON line; a session fixture starts every combination's process at once (they run in
parallel against the shared `conformance_server`) and each test below asserts on one scenario's
entry. Test names carry the docs/protocol.md §13 checklist numbers they cover.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import missing_tool
from tests.support.servers import RunningServer

pytestmark = pytest.mark.interop

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "scenarios.mjs"
CLIENT_PACKAGE = HERE / "node_modules" / "@microsoft" / "signalr" / "package.json"
MARK = "INTEROP-RESULT "

# (transport, protocol) -> test id
COMBOS: dict[str, tuple[str, str]] = {
    "ws-json": ("WebSockets", "json"),
    "ws-msgpack": ("WebSockets", "messagepack"),
    "sse-json": ("ServerSentEvents", "json"),
    "lp-json": ("LongPolling", "json"),
    "lp-msgpack": ("LongPolling", "messagepack"),
}
WEBSOCKET_COMBOS = [name for name, (transport, _) in COMBOS.items() if transport == "WebSockets"]
GENERAL = "general"  # transport-independent scenarios (raw negotiate)

COMBO_SCENARIOS = [
    "echo",
    "method_name_case",
    "add",
    "fail",
    "crash",
    "counter",
    "stream_cancel",
    "sum",
    "connection_id",
    "negotiate_v0_client",
    "broadcast_groups",
    "ask_client",
    "abort",
    "unknown_method",
    "wrong_argument_count",
    "send_without_response",
    "streaming_misuse",
    "oversize",
]
WEBSOCKET_ONLY_SCENARIOS = ["skip_negotiation"]
GENERAL_SCENARIOS = ["negotiate_raw"]

FAIL_MESSAGE = "room is full ✓ 日本"
SECRET = "conformance-secret-detail"
OVERSIZE_LENGTH = 40_000  # > MaximumReceiveMessageSize (32 768 B) in both protocols

ECHO_VALUES: dict[str, Any] = {
    "null": None,
    "true": True,
    "false": False,
    "zero": 0,
    "negative_int": -42,
    "int32_max": 2**31 - 1,
    "max_safe_integer": 2**53 - 1,
    "float": 3.14159,
    "negative_float": -0.5,
    "huge_float": 1e300,
    "empty_string": "",
    "unicode": "héllo wörld ✓ 日本語 🎉 Ω",
    "control_chars": 'tab\tnewline\nquote"backslash\\ record-separator\x1e nul\x00 end',
    "empty_array": [],
    "empty_object": {},
    "array": [1, "two", None, True, 2.5, [3, [4, []]]],
    "nested_object": {
        "name": "nested",
        "tags": ["a", "b"],
        "inner": {"deeper": {"n": 1, "none": None, "ok": False}, "list": [{"x": 1}, {"y": [2]}]},
        "ünïcode-kéy": "✓",
    },
    "large_string_20k": "".join(chr(ord("a") + i % 26) for i in range(20_000)),
    "large_unicode_string": "ü✓" * 3_000,
    "large_array": list(range(2_000)),
}


@dataclass
class NodeRun:
    key: str
    process: subprocess.Popen[str]
    stdout: str = ""
    stderr: str = ""
    results: dict[str, Any] | None = None
    failure: str | None = None
    collected: bool = False


@dataclass
class InteropRuns:
    """One node process per combination, all started together, collected on first use."""

    node: str
    hub_url: str
    unit: float
    config_dir: Path
    runs: dict[str, NodeRun] = field(default_factory=dict)

    def start(self) -> None:
        for key in [*COMBOS, GENERAL]:
            if key == GENERAL:
                transport, protocol, scenarios = None, "json", GENERAL_SCENARIOS
            else:
                transport, protocol = COMBOS[key]
                scenarios = list(COMBO_SCENARIOS)
                if key in WEBSOCKET_COMBOS:
                    scenarios += WEBSOCKET_ONLY_SCENARIOS
            config = {
                "hubUrl": self.hub_url,
                "transport": transport,
                "protocol": protocol,
                "unit": self.unit,
                "scenarios": scenarios,
                "echoValues": ECHO_VALUES,
                "failMessage": FAIL_MESSAGE,
                "oversizeLength": OVERSIZE_LENGTH,
            }
            env = dict(os.environ)
            env["HERO_TEST_TIMEOUT_UNIT"] = str(self.unit)
            config_file = self.config_dir / f"{key}.json"
            config_file.write_text(json.dumps(config), encoding="utf-8")
            process = subprocess.Popen(
                [self.node, str(SCRIPT), str(config_file)],
                cwd=HERE,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                env=env,
            )
            self.runs[key] = NodeRun(key, process)

    def collect(self, key: str) -> NodeRun:
        run = self.runs[key]
        if run.collected:
            return run
        run.collected = True
        try:
            run.stdout, run.stderr = run.process.communicate(timeout=90 * self.unit)
        except subprocess.TimeoutExpired:
            run.process.kill()
            run.stdout, run.stderr = run.process.communicate()
            run.failure = f"node did not finish within {90 * self.unit} s"
            return run
        lines = [line for line in run.stdout.splitlines() if line.startswith(MARK)]
        if run.process.returncode != 0 or len(lines) != 1:
            run.failure = f"node exited with {run.process.returncode} and {len(lines)} result lines"
            return run
        run.results = json.loads(lines[0][len(MARK) :])["results"]
        return run

    def scenario(self, key: str, name: str) -> dict[str, Any]:
        run = self.collect(key)
        tail = run.stderr[-4000:]
        if run.results is None:
            pytest.fail(f"[{key}] {run.failure}\nstdout:\n{run.stdout[-2000:]}\nstderr:\n{tail}")
        entry = run.results[name]
        if not entry["ok"]:
            pytest.fail(
                f"[{key}] scenario {name!r} failed in node: {entry['error']}\n"
                f"state: {json.dumps(entry.get('state'))[:3000]}\n"
                f"stack: {entry.get('stack')}\nnode stderr:\n{tail}"
            )
        value: dict[str, Any] = entry["value"]
        return value

    def stop(self) -> None:
        for run in self.runs.values():
            if run.process.poll() is None:
                run.process.kill()
                run.process.communicate()


@pytest.fixture(scope="session")
def interop(
    conformance_server: RunningServer,
    node: str,
    unit: float,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[InteropRuns]:
    if not CLIENT_PACKAGE.exists():
        missing_tool("the official client is not installed: run `npm ci` in tests/interop")
    runs = InteropRuns(
        node, conformance_server.base_url + "/conformance", unit, tmp_path_factory.mktemp("interop")
    )
    runs.start()
    yield runs
    runs.stop()


@pytest.fixture(params=list(COMBOS))
def combo(request: pytest.FixtureRequest) -> str:
    key: str = request.param
    return key


def same(actual: Any, expected: Any) -> bool:
    """Equality that also tells bool from int (True == 1 in Python)."""
    return json.dumps(actual, sort_keys=True) == json.dumps(expected, sort_keys=True)


# ------------------------------------------------------------------------- negotiate


def test_checklist_1_5_9_negotiate_v1_raw(interop: InteropRuns) -> None:
    """1, 5, 9: v1 negotiate has distinct URL-safe id and token, transports in .NET order."""
    result = interop.scenario(GENERAL, "negotiate_raw")
    first, second = result["v1"], result["v1again"]
    for response in (first, second):
        assert response["status"] == 200
        assert response["contentType"].startswith("application/json")
        body = response["body"]
        assert body["negotiateVersion"] == 1
        assert body["connectionId"] != body["connectionToken"]
        for value in (body["connectionId"], body["connectionToken"]):
            assert re.fullmatch(r"[A-Za-z0-9_-]+", value), value
        assert body["availableTransports"] == [
            {"transport": "WebSockets", "transferFormats": ["Text", "Binary"]},
            {"transport": "ServerSentEvents", "transferFormats": ["Text"]},
            {"transport": "LongPolling", "transferFormats": ["Text", "Binary"]},
        ]
        assert "useStatefulReconnect" not in body  # checklist 6: not asked for
    assert first["body"]["connectionId"] != second["body"]["connectionId"]
    assert first["body"]["connectionToken"] != second["body"]["connectionToken"]


def test_checklist_2_negotiate_v0_raw_has_no_token(interop: InteropRuns) -> None:
    """2: negotiate without negotiateVersion answers version 0 with a connectionId and no token."""
    response = interop.scenario(GENERAL, "negotiate_raw")["v0"]
    assert response["status"] == 200
    body = response["body"]
    assert body["negotiateVersion"] == 0
    assert isinstance(body["connectionId"], str)
    assert body["connectionId"]
    assert "connectionToken" not in body
    assert [t["transport"] for t in body["availableTransports"]] == [
        "WebSockets",
        "ServerSentEvents",
        "LongPolling",
    ]


def test_checklist_3_4_8_negotiate_version_edge_cases(interop: InteropRuns) -> None:
    """3: version 5 -> 1; 4: non-integer -> exact error body; 8: GET negotiate -> 405."""
    result = interop.scenario(GENERAL, "negotiate_raw")
    assert result["v5"]["status"] == 200
    assert result["v5"]["body"]["negotiateVersion"] == 1
    assert result["v5"]["body"]["connectionToken"]
    assert result["nonInteger"]["status"] == 200
    assert result["nonInteger"]["body"] == {
        "error": "The client requested a non-integer protocol version."
    }
    assert result["getStatus"] == 405


def test_checklist_1_27_connection_id_matches_negotiated_v1(
    interop: InteropRuns, combo: str
) -> None:
    """1, 27: a normal JS start() (negotiate v1, ?id=<token>, handshake) on every combination;
    the hub's ConnectionId() equals connection.connectionId."""
    result = interop.scenario(combo, "connection_id")
    assert result["client"]
    assert result["server"] == result["client"]
    assert result["otherServer"] == result["otherClient"]
    assert result["client"] != result["otherClient"]


def test_checklist_2_11_js_client_negotiating_v0_connects(interop: InteropRuns, combo: str) -> None:
    """2, 11: hub URL `?negotiateVersion=0&app=x` makes the JS client negotiate v0 and connect
    with ?id=<connectionId> (plus the extra query parameters) on every transport."""
    result = interop.scenario(combo, "negotiate_v0_client")
    assert result["client"]
    assert result["server"] == result["client"]
    assert result["echo"] == "v0"
    assert result["stream"] == {"items": [0, 1, 2], "completed": True, "error": None}


@pytest.mark.parametrize("ws_combo", WEBSOCKET_COMBOS)
def test_checklist_12_skip_negotiation_websockets(interop: InteropRuns, ws_combo: str) -> None:
    """12: skipNegotiation + WebSockets opens ws://.../conformance without id; the server
    creates the connection on the spot (client connectionId stays null)."""
    result = interop.scenario(ws_combo, "skip_negotiation")
    assert result["client"] is None
    assert isinstance(result["server"], str)
    assert result["server"]
    assert result["echo"] == {"skip": True, "n": [1, 2]}
    assert result["stream"] == {"items": [0, 1, 2], "completed": True, "error": None}


# ------------------------------------------------------------------------- invocations


@pytest.mark.parametrize("name", list(ECHO_VALUES))
def test_checklist_34_echo_returns_value_unchanged(
    interop: InteropRuns, combo: str, name: str
) -> None:
    """34 (and 16/43 for the 20 KB payloads): Echo(x) resolves with x, value and type."""
    values = interop.scenario(combo, "echo")["values"]
    assert same(values[name], ECHO_VALUES[name]), (values[name], ECHO_VALUES[name])


def test_checklist_34_add(interop: InteropRuns, combo: str) -> None:
    """34: Add(a, b) resolves with a + b for ints, floats and large integers."""
    result = interop.scenario(combo, "add")
    assert same(result["ints"], 5)
    assert result["floats"] == 3.75
    assert same(result["negative"], 0)
    assert same(result["large"], 2**40 + 1)


def test_section_9_1_method_names_are_case_insensitive(interop: InteropRuns, combo: str) -> None:
    """Section 9.1 / gotcha 12: `echo`, `ECHO` and `add` reach Echo and Add."""
    result = interop.scenario(combo, "method_name_case")
    assert result == {"lower": "lower", "upper": "upper", "mixed": 42}


def test_checklist_36_fail_passes_hub_exception_message(interop: InteropRuns, combo: str) -> None:
    """36: a HubException reaches invoke()'s rejection as
    `An unexpected error occurred invoking 'Fail' on the server. HubException: <msg>`."""
    result = interop.scenario(combo, "fail")
    assert result["outcome"] == {
        "resolved": False,
        "error": f"An unexpected error occurred invoking 'Fail' on the server. "
        f"HubException: {FAIL_MESSAGE}",
    }
    assert result["after"] == "after-fail"


def test_checklist_36_crash_is_generic(interop: InteropRuns, combo: str) -> None:
    """36: any other exception gives only the generic prefix, never the exception text."""
    result = interop.scenario(combo, "crash")
    assert result["outcome"] == {
        "resolved": False,
        "error": "An unexpected error occurred invoking 'Crash' on the server.",
    }
    assert SECRET not in json.dumps(result)
    assert result["after"] == "after-crash"


def test_checklist_35_unknown_method(interop: InteropRuns, combo: str) -> None:
    """35: invoke('Nope') rejects with exactly the server text `Unknown hub method 'Nope'`
    (the JS client surfaces a Completion error verbatim as Error.message)."""
    result = interop.scenario(combo, "unknown_method")
    assert result["outcome"] == {"resolved": False, "error": "Unknown hub method 'Nope'"}
    assert result["after"] == "after-unknown"


def test_checklist_37_wrong_argument_count_keeps_connection(
    interop: InteropRuns, combo: str
) -> None:
    """37: too few / too many arguments -> `Failed to invoke 'Add' due to an error on the
    server.`, and the connection stays usable."""
    result = interop.scenario(combo, "wrong_argument_count")
    expected = {"resolved": False, "error": "Failed to invoke 'Add' due to an error on the server."}
    assert result["tooFew"] == expected
    assert result["tooMany"] == expected
    assert result["after"] == "after-wrong-args"
    assert result["add"] == 3
    assert result["state"] == "Connected"


def test_checklist_33_send_gets_no_completion(interop: InteropRuns, combo: str) -> None:
    """33: connection.send() (no invocationId) of an unknown method, a crashing method and a
    bad argument count produces no Completion at all."""
    result = interop.scenario(combo, "send_without_response")
    assert result["unexpectedCompletions"] == []
    assert result["echo"] == "after-send"
    assert result["state"] == "Connected"


# ------------------------------------------------------------------------- streaming


def test_checklist_48_stream_items_then_completion(interop: InteropRuns, combo: str) -> None:
    """48: Counter(5, 10) yields 0..4 in order then completes; Counter(0, 0) just completes."""
    result = interop.scenario(combo, "counter")
    assert result["five"] == {"items": [0, 1, 2, 3, 4], "completed": True, "error": None}
    assert result["zero"] == {"items": [], "completed": True, "error": None}


def test_checklist_49_stream_cancel_stops_production(interop: InteropRuns, combo: str) -> None:
    """49: disposing a Counter(1000, 20) subscription sends CancelInvocation; no StreamItem
    reaches the wire after a short grace period, the server's final Completion has no error,
    and the connection keeps working."""
    result = interop.scenario(combo, "stream_cancel")
    assert result["cancelSent"]
    assert result["cancelInvocationId"] == result["invocationId"]
    assert result["itemsBeforeDispose"] >= 3
    assert result["subscriberItemsAfterDispose"] == 0
    assert result["wireItemsAfterGrace"] == 0, result
    assert result["wireItemsTotal"] < 100, result  # production stopped early
    assert [c["error"] for c in result["completions"]] in ([], [None])
    assert result["subscriberEvents"] == []
    assert result["echo"] == "after-cancel"


def test_checklist_49_stream_cancel_still_sends_completion(
    interop: InteropRuns, combo: str
) -> None:
    """49: the cancelled stream still ends with one Completion without error or result."""
    result = interop.scenario(combo, "stream_cancel")
    assert result["completions"] == [{"error": None, "hasResult": False}]


def test_checklist_51_sum_upload_stream(interop: InteropRuns, combo: str) -> None:
    """51: Sum(Subject) receives the uploaded items and returns their sum once the Subject
    completes; an empty upload sums to 0; 50 items; an upload error fails the invocation."""
    result = interop.scenario(combo, "sum")
    assert result["total"] == 6
    assert result["empty"] == 0
    assert result["many"] == 1275
    assert result["broken"]["resolved"] is False
    assert result["broken"]["error"].startswith(
        "An unexpected error occurred invoking 'Sum' on the server."
    )
    assert result["after"] == "after-sum"


def test_checklist_50_streaming_misuse_errors(interop: InteropRuns, combo: str) -> None:
    """50: invoke() of a streaming method and stream() of a plain method get the exact errors."""
    result = interop.scenario(combo, "streaming_misuse")
    assert result["invokeStreaming"] == {
        "resolved": False,
        "error": "The client attempted to invoke the streaming 'Counter' method with a "
        "non-streaming invocation.",
    }
    assert result["streamNonStreaming"] == {
        "items": [],
        "completed": False,
        "error": "The client attempted to invoke the non-streaming 'Echo' method with a "
        "streaming invocation.",
    }
    assert result["after"] == "after-misuse"


# ------------------------------------------------------------------------- broadcast and groups


def _received(interop: InteropRuns, combo: str) -> dict[str, dict[str, list[Any]]]:
    result = interop.scenario(combo, "broadcast_groups")
    received: dict[str, dict[str, list[Any]]] = result["received"]
    for who in "abc":  # every barrier went through, so absences below are real
        assert received[who]["sentinel"] == ["s1", "s2", "s3", "s4"]
    return received


def test_checklist_38_broadcast_reaches_both_clients(interop: InteropRuns, combo: str) -> None:
    """38, 57: Broadcast from client A and from client B reaches A, B and a third client C
    (the JS client's validation of server->client Invocations accepts them)."""
    received = _received(interop, combo)
    for who in "abc":
        assert received[who]["broadcast"] == ["from-a", {"from": "b", "n": 1}]


def test_checklist_57_send_to_others_excludes_caller(interop: InteropRuns, combo: str) -> None:
    """57: SendToOthers from B reaches A and C but not B."""
    received = _received(interop, combo)
    assert received["a"]["others"] == ["others-b"]
    assert received["c"]["others"] == ["others-b"]
    assert received["b"]["others"] == []


def test_checklist_57_group_messages_reach_members_only(interop: InteropRuns, combo: str) -> None:
    """57: after A and B JoinGroup, SendToGroup (from a member or from non-member C) reaches A
    and B only; a differently-cased group name reaches nobody."""
    received = _received(interop, combo)
    assert received["a"]["group"][:2] == ["g1", "g2-from-non-member"]
    assert received["b"]["group"][:2] == ["g1", "g2-from-non-member"]
    assert received["c"]["group"] == []
    for who in "abc":
        assert "g-wrong-case" not in received[who]["group"]


def test_checklist_57_leave_group_stops_group_messages(interop: InteropRuns, combo: str) -> None:
    """57: after B's LeaveGroup, a group message reaches A (joined twice: one copy) but not B."""
    received = _received(interop, combo)
    assert received["a"]["group"] == ["g1", "g2-from-non-member", "g3-after-leave"]
    assert received["b"]["group"] == ["g1", "g2-from-non-member"]


# ------------------------------------------------------------------------- client results


def test_checklist_52_ask_client_returns_handler_value(interop: InteropRuns, combo: str) -> None:
    """52: AskClient resolves with the value the client's handler returned (sync and async)."""
    result = interop.scenario(combo, "ask_client")
    assert result["doubled"] == 42
    assert result["described"] == {
        "got": "hi",
        "list": [1, "two", None],
        "nested": {"ok": True},
    }
    assert result["after"] == "after-ask"


def test_checklist_52_ask_client_failures_reject_the_caller(
    interop: InteropRuns, combo: str
) -> None:
    """52: a throwing handler, a missing handler and a handler returning nothing all make the
    AskClient invocation reject (the connection stays usable)."""
    result = interop.scenario(combo, "ask_client")
    for key in ("thrown", "missing", "nothing"):
        assert result[key]["resolved"] is False
        assert result[key]["error"].startswith(
            "An unexpected error occurred invoking 'AskClient' on the server."
        )
        assert SECRET not in result[key]["error"]
    assert result["after"] == "after-ask"


def test_checklist_52_ask_client_handler_error_text_reaches_caller(
    interop: InteropRuns, combo: str
) -> None:
    """52 / section 9.5: the client's Completion error becomes a HubException on the server, so
    the caller sees `... HubException: Error: client-side boom`."""
    result = interop.scenario(combo, "ask_client")
    assert result["thrown"]["error"] == (
        "An unexpected error occurred invoking 'AskClient' on the server. "
        "HubException: Error: client-side boom"
    )


def test_checklist_52_ask_client_without_handler_reports_no_result(
    interop: InteropRuns, combo: str
) -> None:
    """52 / section 9.5: no handler (or a handler returning undefined) -> the JS client answers
    `Client didn't provide a result.`, which reaches the caller as a HubException text."""
    result = interop.scenario(combo, "ask_client")
    expected = (
        "An unexpected error occurred invoking 'AskClient' on the server. "
        "HubException: Client didn't provide a result."
    )
    assert result["missing"]["error"] == expected
    assert result["nothing"]["error"] == expected


# ------------------------------------------------------------------------- closing


def test_checklist_47_abort_closes_without_reconnect(interop: InteropRuns, combo: str) -> None:
    """47: Abort() -> the server sends a Close without error and without allowReconnect, so
    onclose fires (no error) and withAutomaticReconnect does NOT reconnect."""
    result = interop.scenario(combo, "abort")
    assert result["closeMessages"] == [
        {"error": None, "allowReconnect": result["closeMessages"][0]["allowReconnect"]}
    ]
    assert result["closeMessages"][0]["allowReconnect"] in (None, False)
    assert result["closeError"] is None
    assert result["events"] == ["close: null"]
    assert result["state"] == "Disconnected"


def test_checklist_54_oversize_message_closes_and_client_reconnects(
    interop: InteropRuns, combo: str
) -> None:
    """54: Echo of a 40 000-character string exceeds 32 768 B: the server closes with
    `Connection closed with an error.` + allowReconnect, the message is not dispatched, the
    client (withAutomaticReconnect) reconnects as a new connection, and a second client is
    unaffected throughout."""
    result = interop.scenario(combo, "oversize")
    close_text = "Server returned an error on close: Connection closed with an error."
    assert result["oversized"] == {"resolved": False, "error": close_text}
    assert result["closeMessages"] == [
        {"error": "Connection closed with an error.", "allowReconnect": True}
    ]
    assert result["reconnectingError"] == close_text
    assert result["newId"]
    assert result["newId"] != result["oldId"]
    assert result["events"] == [f"reconnecting: {close_text}", f"reconnected: {result['newId']}"]
    assert result["victimAfter"] == "victim-after"
    assert result["victimServerId"] == result["newId"]
    assert result["bystanderDuring"] == "bystander-during"
    assert result["bystanderAfter"] == "bystander-after"
    assert result["bystanderState"] == "Connected"
