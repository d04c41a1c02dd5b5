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
from pathlib import Path

from herobench import ROOT, hero_server, write_report

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
    results = []
    with hero_server("conformance-server") as (_, port):
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
    write_report("stateful-drops", args.output, {"results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
