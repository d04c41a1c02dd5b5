"""bench/fanout.py --quick runs end to end: three servers per scenario, rows of positive numbers.

No timed assertions: the numbers are not judged, only that the benchmark still works.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.servers import UNIT

ROOT = Path(__file__).resolve().parents[2]
ROWS = {
    "hero": "| hero (SignalR JSON)",
    "socketio": "| python-socketio",
    "ceiling": "| raw websockets ceiling",
}


def _number(cell: str) -> float:
    return float(cell.strip().rstrip("%").replace(",", ""))


THROUGHPUT = ("trigger", "burst", "context")
SCENARIOS = (*THROUGHPUT, "latency")


def _bench(script: str, *args: str, budget: float = 600.0) -> subprocess.CompletedProcess[str]:
    """`python bench/<script> <args>`, which must exit 0; `budget` seconds is a hang guard,
    not a measurement."""
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=budget * UNIT,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return completed


def test_fanout_quick_reports_all_three_servers(tmp_path: Path) -> None:
    output = tmp_path / "fanout-quick.json"
    completed = _bench("fanout.py", "--quick", "--output", str(output))

    report = json.loads(output.read_text())
    rates = [f"{r:g}" for r in report["params"]["rates"]]
    lines = completed.stdout.splitlines()
    for kind, prefix in ROWS.items():
        rows = [line for line in lines if line.startswith(prefix)]
        # One row per throughput scenario, then one latency row per rate.
        assert len(rows) == len(THROUGHPUT) + len(rates), f"{kind} rows in:\n{completed.stdout}"
        for index, row in enumerate(rows):
            assert "INCOMPLETE" not in row
            cells = row.strip("|").split("|")
            if index < len(THROUGHPUT):  # msgs/s, CPU µs/msg, CPU µs/frame
                assert all(_number(c) > 0 for c in cells[1:4])
            else:  # rate, p50 ms
                assert all(_number(c) > 0 for c in cells[1:3])

    assert set(report["summary"]) == set(SCENARIOS)
    for scenario, by_kind in report["summary"].items():
        assert set(by_kind) == set(ROWS)
        for summary in by_kind.values():
            if scenario == "latency":
                assert set(summary["rates"]) == set(rates)
                for row in summary["rates"].values():
                    assert row["complete"]
                    assert 0 < row["p50_ms"] <= row["p99_ms"] <= row["max_ms"]
            else:
                assert summary["complete"]
                assert summary["msgs_per_s"] > 0
                assert summary["server_cpu_us_per_msg"] > 0
                assert summary["server_cpu_us_per_frame"] > 0


def test_fanout_more_quick_completes_every_part(tmp_path: Path) -> None:
    """bench/fanout_more.py --quick: inbound (both servers, both styles), the four hero
    transports and the three scale-out setups all complete with positive figures."""
    output = tmp_path / "fanout-more-quick.json"
    completed = _bench("fanout_more.py", "--quick", "--output", str(output))
    assert "INCOMPLETE" not in completed.stdout

    parts = json.loads(output.read_text())["parts"]
    assert set(parts["inbound"]["rows"]) == {
        "hero/result",
        "socketio/result",
        "hero/fire",
        "socketio/fire",
    }
    for row in parts["inbound"]["rows"].values():
        for run in row["result"]["runs"]:
            assert run["complete"]
            assert run["replies"] == run["expected_replies"] > 0
            assert run["server_cpu_us_per_invocation"] > 0
    assert set(parts["transports"]["rows"]) == {"ws-json", "ws-msgpack", "sse", "longpolling"}
    assert set(parts["scaleout"]["rows"]) == {"one", "one+valkey", "two+valkey"}
    fanout_rows = [*parts["transports"]["rows"].values(), *parts["scaleout"]["rows"].values()]
    for row in fanout_rows:
        for run in row["result"]["runs"]:
            assert run["complete"]
            for target in run["targets"]:
                assert target["delivered"] == target["expected"] > 0
                assert target["server_cpu_us_per_msg"] > 0
    two = parts["scaleout"]["rows"]["two+valkey"]["result"]["runs"][0]["targets"]
    assert len(two) == 2  # instance B's clients got every broadcast published on A


def test_chat_latency_quick_delivers_every_message(tmp_path: Path) -> None:
    """bench/chat_latency.py --quick on SQLite: every (message, member) receipt arrives."""
    output = tmp_path / "chat-latency-quick.json"
    args = ("--quick", "--database", "sqlite", "--output", str(output))
    completed = _bench("chat_latency.py", *args)
    rows = [line for line in completed.stdout.splitlines() if line.startswith("| SQLite")]
    assert rows, completed.stdout
    assert all("INCOMPLETE" not in row for row in rows)

    report = json.loads(output.read_text())
    entry = report["databases"]["sqlite"]
    summary = entry["summary"]
    assert summary["complete"]
    assert summary["errors"] == 0
    params = report["params"]
    assert summary["expected"] == params["members"] * round(params["duration"] * params["rate"])
    assert summary["delivered"] == summary["expected"]
    for repeat in entry["rounds"]:
        assert repeat["delivered"] == repeat["expected"]
        assert repeat["server_cpu_us_per_msg"] > 0


def test_connections_reports_hero_and_the_other_servers(tmp_path: Path) -> None:
    output = tmp_path / "connections.json"
    sizes = ("--connections", "40", "--users", "10", "--users-per-tenant", "5")
    _bench("connections.py", *sizes, "--output", str(output), budget=300.0)
    report = json.loads(output.read_text())
    others = ("asgi", "raw", "socketio")
    assert set(report["servers"]) == {"hero", *others}
    for result in report["servers"].values():
        assert result["connections"] == 40
        assert result["connections_per_second"] > 0
        assert result["server_cpu_ms_per_connection"] >= 0  # 0 only without schedstat
    assert set(report["ratios"]) == {
        f"hero_per_{other}_{what}"
        for other in others
        for what in ("connections_per_second", "cpu_per_connection")
    }
