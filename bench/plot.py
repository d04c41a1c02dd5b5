"""Draw docs/img/fanout.png from a bench/fanout.py result.

    .venv/bin/python bench/plot.py bench/results/fanout-2026-12-03.json

Two panels, one bar per server and scenario, log scale: delivered messages per second (more
is better) and server CPU per delivered message (less is better). The medians come from the
result's `summary`; the error bars span its min and max bursts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[1]
SERVERS = (("hero", "hero"), ("socketio", "python-socketio"), ("ceiling", "per-frame ceiling"))
SCENARIOS = ("trigger", "context", "burst")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("result", type=Path)
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "img" / "fanout.png")
    args = parser.parse_args()
    report = json.loads(args.result.read_text())
    summary = report["summary"]
    scenarios = [s for s in SCENARIOS if s in summary]
    figure, (rate_axis, cpu_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    width = 0.8 / len(SERVERS)
    for index, (key, label) in enumerate(SERVERS):
        positions = [i + (index - 1) * width for i in range(len(scenarios))]
        rows = [summary[s].get(key) for s in scenarios]
        rates = [row["msgs_per_s"] if row else 0 for row in rows]
        low = [
            r - row.get("msgs_per_s_min", r) if row else 0
            for r, row in zip(rates, rows, strict=True)
        ]
        high = [
            row.get("msgs_per_s_max", r) - r if row else 0
            for r, row in zip(rates, rows, strict=True)
        ]
        rate_axis.bar(positions, rates, width, yerr=[low, high], label=label, capsize=3)
        cpu = [row["server_cpu_us_per_msg"] if row else 0 for row in rows]
        cpu_axis.bar(positions, cpu, width, label=label)
    for axis, title in (
        (rate_axis, "delivered messages/s (more is better)"),
        (cpu_axis, "server CPU µs per delivered message (less is better)"),
    ):
        axis.set_yscale("log")
        axis.set_xticks(range(len(scenarios)), scenarios)
        axis.set_title(title, fontsize=10)
        axis.grid(axis="y", alpha=0.3)
    rate_axis.legend(fontsize=8)
    params = report.get("params", {})
    figure.suptitle(
        f"Fan-out to {params.get('clients', 1000)} WebSocket clients, "
        f"{params.get('payload_bytes', 100)}-byte payloads ({report.get('date', '')}, "
        f"commit {report.get('code', {}).get('commit', '?')})",
        fontsize=11,
    )
    figure.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.output, dpi=110)
    print(args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
