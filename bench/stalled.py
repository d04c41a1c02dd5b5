"""What one stalled client costs the others: fan-out with and without a client that stops reading.

    .venv/bin/python bench/stalled.py --clients 1000 --messages 2000 --repeat 3

Starts `hero conformance-server` (loopback), connects `--clients` SignalR JSON subscribers to
one group plus one publisher, and runs bursts of `--messages` separate `SendToGroup`
invocations, alternating two cases: all subscribers reading, and one more subscriber that
stopped reading its socket (asyncio `pause_reading`, so its kernel buffers fill and the
server's writes to it back up). The figure is the delivered rate to the reading subscribers
(messages / seconds from the first publish to the last delivery) in each case, as min /
median / max over `--repeat` bursts, and their ratio; plus how the server ended the stalled
client (it must be disconnected as a slow consumer) and the server's RSS. Bounded: every wait
has a timeout. Writes bench/results/stalled-<date>.json and prints a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchlib import (
    Counter,
    WsClient,
    encode_payload,
    make_payload,
    process_rss_kib,
    raise_fd_limit,
)
from herobench import hero_server, signalr_connect, write_report

RS = b"\x1e"
GROUP = "bench"
BURST_TIMEOUT = 120.0


def log(message: str) -> None:
    print(f"[stalled] {message}", file=sys.stderr, flush=True)


async def connect(port: int, counter: Counter, *groups: str) -> WsClient:
    return await signalr_connect(port, "/conformance", *groups, counter=counter)


async def burst(
    publisher: WsClient, counter: Counter, trigger: bytes, count: int, readers: int
) -> float:
    counter.arm(count * readers)
    start = time.perf_counter()
    for _ in range(count):
        publisher.send_text(trigger)
    async with asyncio.timeout(BURST_TIMEOUT):
        await counter.done.wait()
    return count * readers / (counter.last - start)


async def run(args: argparse.Namespace, pid: int, port: int) -> dict[str, Any]:
    counter = Counter()
    semaphore = asyncio.Semaphore(64)

    async def one() -> WsClient:
        async with semaphore:
            return await connect(port, counter, GROUP)

    clients = await asyncio.gather(*(one() for _ in range(args.clients)))
    for client in clients:
        client.counting = True
    publisher = await connect(port, Counter())
    big = (
        b'{"type":1,"target":"SendToGroup","arguments":["stall","Big","'
        + b"x" * 30_000
        + b'"]}'
        + RS
    )
    trigger = (
        b'{"type":1,"target":"SendToGroup","arguments":["bench","Tick",'
        + encode_payload(make_payload(args.payload_bytes)).encode()
        + b"]}"
        + RS
    )
    await burst(publisher, counter, trigger, 50, args.clients)  # warm-up
    healthy: list[float] = []
    with_stalled: list[float] = []
    stalled_outcomes: list[str] = []
    for index in range(args.repeat):
        healthy.append(await burst(publisher, counter, trigger, args.messages, args.clients))
        stalled = await connect(port, Counter(), GROUP, "stall")
        transport = stalled._transport
        assert transport is not None
        transport.pause_reading()
        with_stalled.append(await burst(publisher, counter, trigger, args.messages, args.clients))
        # Then fill its queue alone (it is also the only member of "stall") until the
        # server gives up on it: at most ~120 MB, and 60 s.
        ended = False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(60):
                for _ in range(4000):
                    publisher.send_text(big)
                    await asyncio.sleep(0.001)
                    if stalled.closed.done():
                        break
                await stalled.closed
        ended = stalled.closed.done()
        transport.resume_reading()
        stalled_outcomes.append("disconnected by the server" if ended else "still open")
        stalled.close()
        log(f"repeat {index + 1}: healthy {healthy[-1]:.0f}/s, stalled {with_stalled[-1]:.0f}/s")
    rss = process_rss_kib(pid)
    for client in [*clients, publisher]:
        client.close()

    def stats(values: list[float]) -> dict[str, float]:
        return {
            "min": round(min(values)),
            "median": round(statistics.median(values)),
            "max": round(max(values)),
        }

    return {
        "clients": args.clients,
        "messages_per_burst": args.messages,
        "payload_bytes": args.payload_bytes,
        "delivered_per_second_all_reading": stats(healthy),
        "delivered_per_second_one_stalled": stats(with_stalled),
        "median_ratio_stalled_to_reading": round(
            statistics.median(with_stalled) / statistics.median(healthy), 3
        ),
        "stalled_client": stalled_outcomes,
        "server_rss_kib_end": rss,
        "raw": {"all_reading": healthy, "one_stalled": with_stalled},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--payload-bytes", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    raise_fd_limit(args.clients * 2 + 100)
    with hero_server("conformance-server") as (process, port):
        result = asyncio.run(run(args, process.pid, port))
    write_report("stalled", args.output, {"result": result})
    print(json.dumps({k: v for k, v in result.items() if k != "raw"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
