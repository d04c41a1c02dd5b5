"""Stateful reconnect with the official JS client across many forced socket drops.

    .venv/bin/python bench/stateful_drops.py --drops 200 --per-round 50

Starts `hero conformance-server` (loopback) and runs tests/interop/stateful_drops.mjs under
Node for JSON and MessagePack: a receiver with `withStatefulReconnect()` has its WebSocket
destroyed without a close frame `--drops` times while a sender keeps sending numbered
messages to its group; prints (and writes to bench/results/stateful-drops-<date>.json)
messages sent, lost, duplicated and out of order. Needs `npm ci` in tests/interop.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchlib import git_state, machine_info
from soak import ROOT, start_server

SCRIPT = ROOT / "tests" / "interop" / "stateful_drops.mjs"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drops", type=int, default=200)
    parser.add_argument("--per-round", type=int, default=50)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    node = shutil.which("node")
    if node is None:
        print("node is not installed", file=sys.stderr)
        return 1
    port_file = Path("/tmp") / f"hero-drops-{time.time_ns()}.port"
    process, port = start_server(port_file)
    results = []
    try:
        for protocol in ("json", "messagepack"):
            completed = subprocess.run(
                [
                    node,
                    str(SCRIPT),
                    f"http://127.0.0.1:{port}/conformance",
                    protocol,
                    str(args.drops),
                    str(args.per_round),
                    "600000",
                ],
                cwd=SCRIPT.parent,
                capture_output=True,
                text=True,
                timeout=660,
                check=False,
            )
            line = next(
                (x for x in completed.stdout.splitlines() if x.startswith("INTEROP-RESULT ")),
                None,
            )
            if line is None:
                print(completed.stdout, completed.stderr, file=sys.stderr)
                return 1
            results.append(json.loads(line.removeprefix("INTEROP-RESULT ")))
            print(json.dumps(results[-1]))
    finally:
        process.terminate()
        process.wait(15)
        port_file.unlink(missing_ok=True)
    report = {
        "benchmark": "stateful-drops",
        "command": "python bench/stateful_drops.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine_info(),
        "code": git_state(ROOT),
        "results": results,
    }
    default = ROOT / "bench" / "results" / f"stateful-drops-{time.strftime('%Y-%m-%d')}.json"
    (args.output or default).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
