"""Fan-out benchmark: hero vs python-socketio vs a raw `websockets` ceiling, same run.

    .venv/bin/python bench/fanout.py                # 1000 clients, 200 messages, 3 repeats
    .venv/bin/python bench/fanout.py --quick        # smoke: 50 clients, 20 messages

Each server runs alone in its own subprocess on 127.0.0.1 (its CPU time is read from /proc);
one client process holds every subscriber plus the publisher. Per server: connect and join
the group, one warm-up burst, then `--repeat` measured bursts of `--messages` broadcasts of
the same ~`--payload-bytes` JSON payload; the table shows the median of each metric.

Four scenarios (`--scenario`, comma-separated, or `all`, the default; `both` is
trigger,burst):
- trigger: the publisher sends one request per broadcast, back to back (hero: the stock
  `hero conformance-server`, `SendToGroup` invocations; socketio: `publish` events;
  ceiling: "P" frames). Models many independent events arriving together.
- burst: one publisher request makes the server broadcast `--messages` times in a loop
  (hero: bench BenchHub's `Burst` served with HubServer+HubRoute, see fanout_servers.py).
  Models a backlog: whatever a connection has queued can go out in one frame.
- context: one publisher request makes the server start `--messages` independent sends, each
  its own task or loop callback (hero: BenchHub's `Scatter`, one `HubContext` send per task).
  Models application code sending from many places at once.
- latency: single triggers paced at each of `--rates` per second (`--latency-messages` per
  rate and repeat); p50/p99/max from the trigger leaving the publisher to each receipt.
Everything is bounded (per-step and whole-process timeouts) and cleaned up in `finally`.
Prints a markdown table and writes the JSON results (bench/results/fanout-<date>.json).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlib import (
    git_state,
    loadavg,
    machine_info,
    package_versions,
    raise_fd_limit,
    run_json_script,
    save_results,
)

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


def _relative(arguments: tuple[str, ...]) -> list[str]:
    """A command's arguments with paths inside the checkout made relative to it (recorded
    results must not carry this machine's absolute paths)."""
    prefix = f"{ROOT}/"
    return [a[len(prefix) :] if a.startswith(prefix) else a for a in arguments]


BANNER = re.compile(r"listening on (http://\S+)")
STARTUP_TIMEOUT = 30.0


@dataclass(frozen=True)
class ServerSpec:
    kind: str
    label: str
    command: tuple[str, ...]


SERVERS: dict[str, ServerSpec] = {
    "hero": ServerSpec(
        "hero",
        "hero conformance-server",
        (sys.executable, "-m", "hero", "conformance-server", "--host", "127.0.0.1", "--port", "0"),
    ),
    "hero-bench": ServerSpec(
        "hero",
        "hero + BenchHub (bench/fanout_servers.py hero-bench)",
        (sys.executable, str(BENCH / "fanout_servers.py"), "hero-bench"),
    ),
    "socketio": ServerSpec(
        "socketio",
        "python-socketio (ASGI, uvicorn)",
        (sys.executable, str(BENCH / "fanout_servers.py"), "socketio"),
    ),
    "ceiling": ServerSpec(
        "ceiling",
        "raw websockets ceiling",
        (sys.executable, str(BENCH / "fanout_servers.py"), "ceiling"),
    ),
}

SCENARIOS: dict[str, tuple[str, ...]] = {
    "trigger": ("hero", "socketio", "ceiling"),
    "burst": ("hero-bench", "socketio", "ceiling"),
    "context": ("hero-bench", "socketio", "ceiling"),
    "latency": ("hero", "socketio", "ceiling"),
}
LABELS = {"hero": "hero (SignalR JSON)", "socketio": "python-socketio (ASGI, uvicorn)"}
LABELS["ceiling"] = "raw websockets ceiling"

METRICS = (
    "msgs_per_s",
    "server_cpu_us_per_msg",
    "server_cpu_us_per_frame",
    "server_cpu_util",
    "client_cpu_util",
    "other_cpu_util",
    "wall_s",
)


@dataclass
class Running:
    process: subprocess.Popen[str]
    url: str
    output: list[str] = field(default_factory=list)


@contextmanager
def run_server(spec: ServerSpec, extra_env: dict[str, str] | None = None) -> Iterator[Running]:
    """Start one server subprocess, wait for its banner, always stop it afterwards."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(extra_env or {}))
    process = subprocess.Popen(
        spec.command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=ROOT,
    )
    output: list[str] = []
    found = threading.Event()
    url: list[str] = []

    def pump() -> None:  # keeps draining so the server never blocks on a full pipe
        assert process.stdout is not None
        for line in process.stdout:
            if len(output) < 1000:
                output.append(line)
            match = BANNER.search(line)
            if match and not found.is_set():
                url.append(match.group(1))
                found.set()
        found.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        if not found.wait(STARTUP_TIMEOUT) or not url:
            raise RuntimeError(f"{spec.kind} did not start:\n" + "".join(output))
        yield Running(process, url[0], output)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        reader.join(5)


def run_clients(
    spec: ServerSpec, server: Running, scenario: str, args: argparse.Namespace
) -> dict[str, Any]:
    latency = scenario == "latency"
    command = [
        sys.executable,
        str(BENCH / "fanout_client.py"),
        "--kind",
        spec.kind,
        "--mode",
        scenario,
        "--url",
        server.url,
        "--server-pid",
        str(server.process.pid),
        "--clients",
        str(args.clients),
        "--messages",
        str(args.latency_messages if latency else args.messages),
        "--payload-bytes",
        str(args.payload_bytes),
        "--repeat",
        str(args.repeat),
        "--warmup",
        str(min(args.warmup, 5) if latency else args.warmup),
        "--burst-timeout",
        str(args.burst_timeout),
        "--rates",
        ",".join(f"{r:g}" for r in args.rates),
    ]
    # Setup, warm-up and every burst are bounded inside the client; this is the backstop.
    bursts = (args.repeat + 1) * (len(args.rates) if latency else 1)
    paced = sum(args.latency_messages / r for r in args.rates) * args.repeat if latency else 0
    budget = 120 + bursts * (args.burst_timeout + 5) + paced
    return run_json_script(command, budget, f"{spec.kind} client")


def event_loop(pid: int) -> str:
    """Which event loop a running server uses: "uvloop" when uvloop's extension module is
    mapped into the process (the servers import it only to run on it), else "asyncio"."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return "unknown"
    return "uvloop" if re.search(r"/uvloop/loop\.cpython[^/]*\.so", maps) else "asyncio"


LATENCY_METRICS = ("p50_ms", "p99_ms", "max_ms", "server_cpu_us_per_msg")


def summarize_latency(result: dict[str, Any]) -> dict[str, Any]:
    """Per rate: median, min and max over the repeats of each latency figure."""
    by_rate: dict[str, Any] = {}
    for rate in sorted({r["rate"] for r in result["runs"]}):
        runs = [r for r in result["runs"] if r["rate"] == rate]
        row: dict[str, Any] = {}
        for m in LATENCY_METRICS:
            values = [r[m] for r in runs]
            row[m] = statistics.median(values)
            row[f"{m}_min"], row[f"{m}_max"] = min(values), max(values)
        delivered = sum(r["delivered"] for r in runs)
        row["frames_per_msg"] = sum(r["frames"] for r in runs) / delivered if delivered else 0.0
        row["complete"] = all(r["complete"] for r in runs)
        row["overlapped"] = sum(r["overlapped"] for r in runs)
        by_rate[f"{rate:g}"] = row
    return {"rates": by_rate, "event_loop": result.get("server_event_loop", "unknown")}


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    runs = result["runs"]
    summary: dict[str, Any] = {m: statistics.median(r[m] for r in runs) for m in METRICS}
    summary["msgs_per_s_min"] = min(r["msgs_per_s"] for r in runs)
    summary["msgs_per_s_max"] = max(r["msgs_per_s"] for r in runs)
    delivered = sum(r["delivered"] for r in runs)
    frames = sum(r["frames"] for r in runs)
    summary["frames_per_msg"] = frames / delivered if delivered else 0.0
    summary["complete"] = all(r["complete"] for r in runs)
    summary["cpu_source"] = runs[0]["server_cpu_source"] if runs else "none"
    summary["event_loop"] = result.get("server_event_loop", "unknown")
    return summary


def latency_ratios(rows: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """hero's median p99 over the others', per rate (lower is better for hero)."""
    ratios: dict[str, dict[str, float | None]] = {}
    if "hero" in rows:
        for other, name in (("socketio", "hero / python-socketio"), ("ceiling", "hero / ceiling")):
            if other in rows:
                ratios[name] = {
                    rate: ratio(row["p99_ms"], rows[other]["rates"][rate]["p99_ms"])
                    for rate, row in rows["hero"]["rates"].items()
                    if rate in rows[other]["rates"]
                }
    return ratios


def hero_ratios(rows: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    ratios: dict[str, dict[str, float | None]] = {}
    if "hero" in rows:
        for other, name in (("socketio", "hero / python-socketio"), ("ceiling", "hero / ceiling")):
            if other in rows:
                ratios[name] = {
                    m: ratio(rows["hero"][m], rows[other][m])
                    for m in ("msgs_per_s", "server_cpu_us_per_msg")
                }
    return ratios


def versions() -> dict[str, str]:
    return package_versions(
        ("hero-platform", "python-socketio", "python-engineio", "websockets", "uvicorn")
    )


def ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"clients={report['params']['clients']} messages={report['params']['messages']} "
        f"payload={report['params']['payload_bytes']}B repeat={report['params']['repeat']} "
        f"(median), nproc={report['machine']['nproc']}, "
        f"load before/after={report['load']['before'][0]:.2f}/{report['load']['after'][0]:.2f}",
    ]
    for scenario in report["summary"]:
        rows = report["summary"][scenario]
        loops = ", ".join(f"{kind}={row['event_loop']}" for kind, row in rows.items())
        lines += ["", f"### scenario: {scenario}", "", f"server event loops: {loops}", ""]
        if scenario == "latency":
            lines += latency_table(rows, report["ratios"][scenario])
        else:
            lines += scenario_table(rows, report["ratios"][scenario])
    return "\n".join(lines)


def latency_table(rows: dict[str, Any], ratios: dict[str, Any]) -> list[str]:
    lines = [
        "| server | rate /s | p50 ms | p99 ms [min, max] | max ms | server CPU µs/msg | "
        "WS frames/msg | overlapped |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, summary in rows.items():
        for rate, row in summary["rates"].items():
            flag = "" if row["complete"] else " (INCOMPLETE)"
            lines.append(
                f"| {LABELS[kind]}{flag} | {rate} | {row['p50_ms']:.2f} | "
                f"{row['p99_ms']:.2f} [{row['p99_ms_min']:.2f}, {row['p99_ms_max']:.2f}] | "
                f"{row['max_ms']:.2f} | {row['server_cpu_us_per_msg']:.2f} | "
                f"{row['frames_per_msg']:.3f} | {row['overlapped']} |"
            )
    if ratios:
        rates = list(next(iter(ratios.values())))
        header = " | ".join(f"{r}/s" for r in rates)
        lines += ["", f"| p99 ratio (lower is better for hero) | {header} |"]
        lines.append("|---|" + "---:|" * len(rates))
        for name, by_rate in ratios.items():
            cells = " | ".join(fmt_ratio(by_rate.get(r)) for r in rates)
            lines.append(f"| {name} | {cells} |")
    return lines


def scenario_table(rows: dict[str, Any], ratios: dict[str, Any]) -> list[str]:
    lines = [
        "| server | delivered msgs/s | server CPU µs/msg | server CPU µs/frame | "
        "WS frames/msg | server CPU util | client CPU util | other CPU util |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, row in rows.items():
        flag = "" if row["complete"] else " (INCOMPLETE)"
        lines.append(
            f"| {LABELS[kind]}{flag} | {row['msgs_per_s']:,.0f} | "
            f"{row['server_cpu_us_per_msg']:.2f} | {row['server_cpu_us_per_frame']:.2f} | "
            f"{row['frames_per_msg']:.3f} | {row['server_cpu_util']:.0%} | "
            f"{row['client_cpu_util']:.0%} | {row['other_cpu_util']:.0%} |"
        )
    if ratios:
        lines += [
            "",
            "| ratio | msgs/s (higher is better for hero) | server CPU µs/msg (lower is better) |",
            "|---|---:|---:|",
        ]
        for name, pair in ratios.items():
            lines.append(
                f"| {name} | {fmt_ratio(pair['msgs_per_s'])} | "
                f"{fmt_ratio(pair['server_cpu_us_per_msg'])} |"
            )
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=200, help="broadcasts per burst")
    parser.add_argument("--payload-bytes", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3, help="measured bursts (median)")
    parser.add_argument("--warmup", type=int, default=None, help="messages in the warm-up burst")
    parser.add_argument("--burst-timeout", type=float, default=120.0, help="seconds per burst")
    parser.add_argument(
        "--servers",
        default="hero,socketio,ceiling",
        help="comma-separated subset of: hero,socketio,ceiling",
    )
    parser.add_argument(
        "--scenario",
        default="all",
        help="comma-separated subset of trigger,burst,context,latency; all; both (trigger,burst)",
    )
    parser.add_argument("--rates", default="2,5", help="latency: broadcasts per second")
    parser.add_argument(
        "--latency-messages", type=int, default=20, help="latency: broadcasts per rate and repeat"
    )
    parser.add_argument("--quick", action="store_true", help="smoke mode: 50 clients, 20 messages")
    parser.add_argument(
        "--output",
        default=None,
        help="JSON results path (default bench/results/fanout-<date>.json; "
        "--quick writes none unless given)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.clients, args.messages, args.repeat = 50, 20, 1
        args.latency_messages = min(args.latency_messages, 5)
        args.burst_timeout = min(args.burst_timeout, 30.0)
    if args.warmup is None:
        args.warmup = max(1, min(args.messages, 20))
    kinds = [k.strip() for k in args.servers.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in LABELS]
    if unknown or not kinds:
        parser.error(f"unknown servers: {unknown}")
    args.kinds = kinds
    if args.scenario == "all":
        args.scenarios = list(SCENARIOS)
    elif args.scenario == "both":
        args.scenarios = ["trigger", "burst"]
    else:
        args.scenarios = [s.strip() for s in args.scenario.split(",") if s.strip()]
    if not args.scenarios or any(s not in SCENARIOS for s in args.scenarios):
        parser.error(f"unknown scenario in {args.scenario!r}")
    args.rates = [float(r) for r in args.rates.split(",") if r.strip()]
    if not args.rates or any(r <= 0 for r in args.rates):
        parser.error("--rates needs positive numbers")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit(args.clients + 1024)  # inherited by the server and client processes
    now = dt.datetime.now(dt.UTC)
    load_before = loadavg()
    code = git_state(ROOT)
    started = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    for scenario in args.scenarios:
        results[scenario] = {}
        for name in SCENARIOS[scenario]:
            spec = SERVERS[name]
            if spec.kind not in args.kinds:
                continue
            print(f"== {scenario}: {spec.label}", file=sys.stderr, flush=True)
            with run_server(spec) as server:
                result = run_clients(spec, server, scenario, args)
                result["server_event_loop"] = event_loop(server.process.pid)
                results[scenario][spec.kind] = result
    load_after = loadavg()
    summary = {
        scenario: {
            kind: summarize_latency(result) if scenario == "latency" else summarize(result)
            for kind, result in by_kind.items()
        }
        for scenario, by_kind in results.items()
    }
    ratios = {
        scenario: latency_ratios(rows) if scenario == "latency" else hero_ratios(rows)
        for scenario, rows in summary.items()
    }
    report: dict[str, Any] = {
        "benchmark": "fanout",
        "date": now.isoformat(timespec="seconds"),
        "command": " ".join(["python", "bench/fanout.py", *(argv or sys.argv[1:])]),
        "params": {
            "clients": args.clients,
            "messages": args.messages,
            "payload_bytes": args.payload_bytes,
            "repeat": args.repeat,
            "warmup": args.warmup,
            "rates": args.rates,
            "latency_messages": args.latency_messages,
            "quick": args.quick,
            "scenarios": args.scenarios,
            "servers": {name: _relative(spec.command[1:]) for name, spec in SERVERS.items()},
        },
        "machine": machine_info(),
        "versions": versions(),
        "code": code,
        "load": {"before": load_before, "after": load_after},
        "elapsed_s": time.perf_counter() - started,
        "summary": summary,
        "ratios": ratios,
        "results": results,
    }
    table = markdown(report)
    print(table)
    save_results(report, args.output, f"fanout-{now:%Y-%m-%d}", quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
