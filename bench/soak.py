"""Soak: many WebSocket connections for many minutes, a sequence number checked at every one.

    .venv/bin/python bench/soak.py --connections 5000 --minutes 10

Starts `hero conformance-server` (loopback, a free port), opens `--connections` SignalR JSON
connections (negotiate, WebSocket, handshake, `JoinGroup("soak")`) and one publisher, and for
`--minutes` has the publisher invoke `SendToGroup("soak", "Seq", n)` `--rate` times a second
with n = 1, 2, 3, … Every connection checks that each number it receives is the one after the
last: a jump counts the numbers skipped as lost, a repeat as duplicated, a smaller one as out
of order. Every client pings every 10 s, as the official clients do. The server's RSS is
sampled every 10 s; its growth is measured from the end of the warm-up (the first fifth of
the run, at least one minute when the run allows) to the end. Bounded: stops by itself after
the run plus at most a minute of set-up and drain. Writes
bench/results/soak-<date>.json and prints a one-line summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlib import WsClient, process_cpu_seconds, process_rss_kib, raise_fd_limit
from herobench import hero_server, signalr_connect, write_report

RS = b"\x1e"
GROUP = "soak"
PING = b'{"type":6}' + RS
SEQ = re.compile(rb'"target":"Seq","arguments":\[(\d+)\]')
DRAIN_TIMEOUT = 60.0


def log(message: str) -> None:
    print(f"[soak] {message}", file=sys.stderr, flush=True)


@dataclass
class Tally:
    """What one connection saw."""

    last: int = 0
    received: int = 0
    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0

    def see(self, frame: bytes) -> None:
        for match in SEQ.finditer(frame):
            number = int(match.group(1))
            self.received += 1
            if number == self.last + 1:
                self.last = number
            elif number > self.last + 1:
                self.lost += number - self.last - 1
                self.last = number
            elif number == self.last:
                self.duplicated += 1
            else:
                self.out_of_order += 1


@dataclass
class Run:
    tallies: list[Tally] = field(default_factory=list)
    clients: list[WsClient] = field(default_factory=list)
    rss_kib: list[tuple[float, int]] = field(default_factory=list)


async def connect(port: int, tally: Tally | None) -> WsClient:
    if tally is None:
        return await signalr_connect(port, "/conformance")
    client = await signalr_connect(port, "/conformance", GROUP)
    client.on_text = tally.see
    return client


async def keepalive(clients: list[WsClient]) -> None:
    while True:
        await asyncio.sleep(10)
        for client in clients:
            client.send_text(PING)


async def sample_rss(pid: int, run: Run, start: float) -> None:
    while True:
        run.rss_kib.append((round(time.monotonic() - start, 1), process_rss_kib(pid)))
        await asyncio.sleep(10)


async def soak(args: argparse.Namespace, pid: int, port: int) -> dict[str, Any]:
    run = Run()
    semaphore = asyncio.Semaphore(64)

    async def one(index: int) -> None:
        tally = Tally()
        async with semaphore:
            client = await connect(port, tally)
        run.tallies.append(tally)
        run.clients.append(client)
        if (index + 1) % 1000 == 0:
            log(f"{index + 1} connections")

    connect_start = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(args.connections)))
    connect_seconds = time.monotonic() - connect_start
    publisher = await connect(port, None)
    run.clients.append(publisher)
    rss_connected = process_rss_kib(pid)
    log(f"{args.connections} connected in {connect_seconds:.1f} s; RSS {rss_connected} KiB")

    pinging = asyncio.ensure_future(keepalive(run.clients))
    start = time.monotonic()
    sampling = asyncio.ensure_future(sample_rss(pid, run, start))
    cpu_start = process_cpu_seconds(pid)
    duration = args.minutes * 60
    interval = 1 / args.rate
    sent = 0
    while time.monotonic() - start < duration:
        sent += 1
        publisher.send_text(
            b'{"type":1,"target":"SendToGroup","arguments":["'
            + GROUP.encode()
            + b'","Seq",'
            + str(sent).encode()
            + b"]}"
            + RS
        )
        next_at = start + sent * interval
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        if sent % max(1, round(60 * args.rate)) == 0:
            log(f"{sent} sent, {round(time.monotonic() - start)} s")
    drain_start = time.monotonic()
    while time.monotonic() - drain_start < DRAIN_TIMEOUT:
        if all(t.last >= sent for t in run.tallies):
            break
        await asyncio.sleep(0.5)
    cpu_seconds = process_cpu_seconds(pid) - cpu_start
    run.rss_kib.append((round(time.monotonic() - start, 1), process_rss_kib(pid)))
    pinging.cancel()
    sampling.cancel()
    closed = sum(1 for c in run.clients if c.closed.done())
    for client in run.clients:
        client.close()

    warm_up = min(max(60.0, duration / 5), duration / 2)
    after_warm_up = next((kib for at, kib in run.rss_kib if at >= warm_up), run.rss_kib[0][1])
    final = run.rss_kib[-1][1]
    missing_at_end = sum(max(0, sent - t.last) for t in run.tallies)
    return {
        "connections": args.connections,
        "minutes": args.minutes,
        "rate_per_second": args.rate,
        "sent": sent,
        "expected_deliveries": sent * args.connections,
        "received": sum(t.received for t in run.tallies),
        "lost": sum(t.lost for t in run.tallies) + missing_at_end,
        "duplicated": sum(t.duplicated for t in run.tallies),
        "out_of_order": sum(t.out_of_order for t in run.tallies),
        "connections_closed_by_server": closed,
        "connect_seconds": round(connect_seconds, 1),
        "server_cpu_seconds": round(cpu_seconds, 1),
        "rss_kib_connected": rss_connected,
        "rss_kib_after_warm_up": after_warm_up,
        "rss_kib_final": final,
        "rss_growth_after_warm_up": round((final - after_warm_up) / after_warm_up, 4),
        "warm_up_seconds": warm_up,
        "rss_kib_samples": run.rss_kib,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=2.0, help="broadcasts per second")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    raise_fd_limit(args.connections * 2 + 100)
    with hero_server("conformance-server") as (process, port):
        result = asyncio.run(soak(args, process.pid, port))
    write_report("soak", args.output, {"result": result}, ("msgspec",))
    print(json.dumps({k: v for k, v in result.items() if k != "rss_kib_samples"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
