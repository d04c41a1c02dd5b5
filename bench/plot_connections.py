"""Draw docs/img/connections.png from bench/connections.py results.

    .venv/bin/python bench/plot_connections.py \\
        before=bench/results/connections-2026-12-04-evening-before-run*.json \\
        default=bench/results/connections-2026-12-04-evening-default-run*.json \\
        night=bench/results/connections-2026-12-04-night-run*.json

Each argument is `<label>=<result files>` (one group of bars per label; the files are the
runs of one command). Two panels, one bar per server: connections opened per second (more
is better) and server CPU per connection (less is better), the median of the runs with the
min and max as error bars.
"""

from __future__ import annotations

import argparse
import glob
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[1]
SERVERS = (
    ("hero", "hero"),
    ("asgi", "bare ASGI app under uvicorn"),
    ("raw", "raw asyncio protocol"),
    ("socketio", "python-socketio"),
)
ALIASES = {"ceiling": "asgi"}  # the bare ASGI app's name in results before 2026-12-04 night
METRICS = (
    ("connections_per_second", "connections opened / s (more is better)"),
    ("server_cpu_ms_per_connection", "server CPU ms / connection (less is better)"),
)


def _runs(pattern: str) -> list[dict[str, Any]]:
    files = sorted(glob.glob(pattern)) or [pattern]
    runs = [json.loads(Path(name).read_text()) for name in files]
    for run in runs:
        run["servers"] = {ALIASES.get(k, k): v for k, v in run["servers"].items()}
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("groups", nargs="+", help="<label>=<glob of result files>")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "img" / "connections.png")
    args = parser.parse_args()
    split = (group.partition("=") for group in args.groups)
    groups = [(label, _runs(pattern)) for label, _, pattern in split]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / len(SERVERS)
    for axis, (metric, title) in zip(axes, METRICS, strict=True):
        for index, (server, name) in enumerate(SERVERS):
            xs, medians, lows, highs = [], [], [], []
            for position, (_, runs) in enumerate(groups):
                values = [r["servers"][server][metric] for r in runs if server in r["servers"]]
                if not values:
                    continue
                median = statistics.median(values)
                xs.append(position + (index - (len(SERVERS) - 1) / 2) * width)
                medians.append(median)
                lows.append(median - min(values))
                highs.append(max(values) - median)
            axis.bar(xs, medians, width, yerr=[lows, highs], capsize=3, label=name)
        axis.set_xticks(range(len(groups)), [label for label, _ in groups])
        axis.set_title(title, fontsize=10)
    axes[0].legend(fontsize=8)
    figure.suptitle("bench/connections.py --connections 5000 --users 1000 (median, min-max of 3)")
    figure.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.output, dpi=110)
    print(args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
