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


SCENARIOS = ("trigger", "burst")


def test_fanout_quick_reports_all_three_servers(tmp_path: Path) -> None:
    output = tmp_path / "fanout-quick.json"
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "fanout.py"), "--quick", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600 * UNIT,  # a hang guard, not a measurement
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]

    lines = completed.stdout.splitlines()
    for kind, prefix in ROWS.items():
        rows = [line for line in lines if line.startswith(prefix)]
        assert len(rows) == len(SCENARIOS), f"{kind} rows missing in:\n{completed.stdout}"
        for row in rows:
            assert "INCOMPLETE" not in row
            cells = row.strip("|").split("|")
            msgs_per_s, cpu_per_msg, cpu_per_frame = (_number(c) for c in cells[1:4])
            assert msgs_per_s > 0
            assert cpu_per_msg > 0
            assert cpu_per_frame > 0

    report = json.loads(output.read_text())
    assert set(report["summary"]) == set(SCENARIOS)
    for by_kind in report["summary"].values():
        assert set(by_kind) == set(ROWS)
        for summary in by_kind.values():
            assert summary["complete"]
            assert summary["msgs_per_s"] > 0
            assert summary["server_cpu_us_per_msg"] > 0


def test_chat_latency_quick_delivers_every_message(tmp_path: Path) -> None:
    """bench/chat_latency.py --quick on SQLite: every (message, member) receipt arrives."""
    output = tmp_path / "chat-latency-quick.json"
    completed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "chat_latency.py"),
            "--quick",
            "--database",
            "sqlite",
            "--output",
            str(output),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600 * UNIT,  # a hang guard, not a measurement
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
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
