"""The client side of bench/fanout.py: N subscribers and one publisher in one process.

    python bench/fanout_client.py --kind hero --url http://127.0.0.1:PORT --server-pid PID

Connects `--clients` subscribers to one group/room, then for each burst (one warm-up, then
`--repeat` measured) the publisher makes the server send `--messages` broadcasts of the payload
to the whole group: `--mode trigger` sends one request per broadcast, back to back (as many
independent events would); `--mode burst` sends a single request and the server loops.
Subscribers only count occurrences of the payload marker per frame (no JSON parsing), so
client CPU stays well below the server's.

Per burst it reports wall time from the first request to the last delivery, the messages and
frames delivered, and the CPU seconds (from /proc) that the server process and this process
used in that window. Prints one JSON object on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from benchlib import (
    Counter,
    WsClient,
    encode_payload,
    http_post,
    make_payload,
    process_cpu_precise,
    process_cpu_seconds,
    process_rss_kib,
    raise_fd_limit,
    system_busy_seconds,
    ws_connect,
)

GROUP = "bench"
RS = b"\x1e"
STEP_TIMEOUT = 30.0
SETTLE_SECONDS = 0.5


def log(message: str) -> None:
    print(f"[fanout-client] {message}", file=sys.stderr, flush=True)


@dataclass
class Target:
    host: str
    port: int
    counter: Counter


# -- per-server wire dialects ------------------------------------------------------------


class Dialect:
    """How to connect, join the group and trigger one broadcast on one kind of server."""

    auto_reply: dict[bytes, bytes] | None = None
    keepalive: bytes | None = None

    def __init__(self, payload: str) -> None:
        self.payload = payload

    async def connect(self, target: Target, join: bool) -> WsClient:
        raise NotImplementedError

    def trigger(self) -> bytes:
        """One request that makes the server send the payload to the group once."""
        raise NotImplementedError

    def burst(self, count: int) -> bytes:
        """One request that makes the server send the payload to the group `count` times."""
        raise NotImplementedError

    def scatter(self, count: int) -> bytes:
        """One request that makes the server start `count` independent sends of the payload
        to the group (separate tasks or loop callbacks, not one loop)."""
        raise NotImplementedError


async def _expect(client: WsClient, accept: Callable[[bytes], bool], what: str) -> bytes:
    deadline = time.monotonic() + STEP_TIMEOUT
    while True:
        frame = await client.receive(max(0.01, deadline - time.monotonic()))
        if accept(frame):
            return frame
        if time.monotonic() > deadline:
            raise TimeoutError(what)


class HeroDialect(Dialect):
    """ASP.NET Core SignalR JSON protocol against `hero conformance-server`."""

    path = "/conformance"
    keepalive = b'{"type":6}' + RS  # the server drops clients silent for 30 s

    async def connect(self, target: Target, join: bool) -> WsClient:
        body = await http_post(
            target.host, target.port, f"{self.path}/negotiate?negotiateVersion=1", timeout=30
        )
        token = json.loads(body)["connectionToken"]
        client = await ws_connect(
            target.host, target.port, f"{self.path}?id={token}", target.counter, timeout=30
        )
        client.send_text(b'{"protocol":"json","version":1}' + RS)
        reply = await client.receive(STEP_TIMEOUT)
        if not reply.startswith(b"{}" + RS):
            raise ConnectionError(f"handshake failed: {reply!r}")
        if join:
            client.send_text(
                json.dumps(
                    {"type": 1, "invocationId": "j", "target": "JoinGroup", "arguments": [GROUP]},
                    separators=(",", ":"),
                ).encode()
                + RS
            )
            await _expect(client, lambda f: b'"type":3' in f, "JoinGroup completion")
        return client

    def trigger(self) -> bytes:
        return (
            b'{"type":1,"target":"SendToGroup","arguments":["'
            + GROUP.encode()
            + b'","Tick",'
            + self.payload.encode()
            + b"]}"
            + RS
        )

    def burst(self, count: int) -> bytes:
        return (
            b'{"type":1,"target":"Burst","arguments":["'
            + GROUP.encode()
            + b'","Tick",'
            + self.payload.encode()
            + b","
            + str(count).encode()
            + b"]}"
            + RS
        )

    def scatter(self, count: int) -> bytes:
        return self.burst(count).replace(b'"target":"Burst"', b'"target":"Scatter"', 1)


class SocketIODialect(Dialect):
    """Engine.IO v4 / Socket.IO v5 over a WebSocket-only transport."""

    path = "/socket.io/?EIO=4&transport=websocket"
    auto_reply = {b"2": b"3"}  # Engine.IO ping -> pong

    async def connect(self, target: Target, join: bool) -> WsClient:
        client = await ws_connect(
            target.host,
            target.port,
            self.path,
            target.counter,
            timeout=30,
            auto_reply=self.auto_reply,
        )
        await _expect(client, lambda f: f.startswith(b"0{"), "Engine.IO open")
        client.send_text(b"40")
        await _expect(client, lambda f: f.startswith(b"40"), "Socket.IO connect")
        if join:
            client.send_text(b'421["join","' + GROUP.encode() + b'"]')
            await _expect(client, lambda f: f.startswith(b"431"), "join ack")
        return client

    def trigger(self) -> bytes:
        return b'42["publish",' + self.payload.encode() + b"]"

    def burst(self, count: int) -> bytes:
        return b'42["burst",' + self.payload.encode() + b"," + str(count).encode() + b"]"

    def scatter(self, count: int) -> bytes:
        return b'42["scatter",' + self.payload.encode() + b"," + str(count).encode() + b"]"


class CeilingDialect(Dialect):
    """bench/fanout_servers.py ceiling: "J" joins, "P<payload>" broadcasts."""

    async def connect(self, target: Target, join: bool) -> WsClient:
        client = await ws_connect(target.host, target.port, "/", target.counter, timeout=30)
        if join:
            client.send_text(b"J")
            await _expect(client, lambda f: f == b"J", "join ack")
        return client

    def trigger(self) -> bytes:
        return b"P" + self.payload.encode()

    def burst(self, count: int) -> bytes:
        return b"B" + str(count).encode() + b":" + self.payload.encode()

    def scatter(self, count: int) -> bytes:
        return b"S" + str(count).encode() + b":" + self.payload.encode()


DIALECTS: dict[str, type[Dialect]] = {
    "hero": HeroDialect,
    "socketio": SocketIODialect,
    "ceiling": CeilingDialect,
}


# -- the run ------------------------------------------------------------------------------


async def _gather_limited(
    factories: list[Callable[[], Awaitable[WsClient]]], limit: int
) -> list[WsClient]:
    semaphore = asyncio.Semaphore(limit)

    async def one(factory: Callable[[], Awaitable[WsClient]]) -> WsClient:
        async with semaphore:
            return await factory()

    return list(await asyncio.gather(*(one(f) for f in factories)))


async def _keepalive(clients: list[WsClient], frame: bytes, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        for client in clients:
            client.send_text(frame)


async def _burst(
    *,
    dialect: Dialect,
    publisher: WsClient,
    counter: Counter,
    clients: int,
    messages: int,
    server_pid: int,
    timeout: float,
    mode: str,
) -> dict[str, Any]:
    expected = clients * messages
    counter.arm(expected)
    if mode == "burst":
        requests = [dialect.burst(messages)]
    elif mode == "context":
        requests = [dialect.scatter(messages)]
    else:
        requests = [dialect.trigger()] * messages
    server_cpu0 = process_cpu_precise(server_pid)
    server_ticks0 = process_cpu_seconds(server_pid)
    own_cpu0 = time.process_time()
    system0 = system_busy_seconds()
    start = time.perf_counter()
    for request in requests:
        publisher.send_text(request)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await counter.done.wait()
    complete = counter.done.is_set()
    end = counter.last if complete else time.perf_counter()
    server_cpu1 = process_cpu_precise(server_pid)
    server_ticks1 = process_cpu_seconds(server_pid)
    own_cpu1 = time.process_time()
    system1 = system_busy_seconds()
    delivered_at_end = counter.messages
    frames = counter.frames
    await asyncio.sleep(SETTLE_SECONDS)  # anything after the target would be a duplicate
    wall = end - start
    server_ticks = server_ticks1 - server_ticks0
    if server_cpu0 is not None and server_cpu1 is not None:
        server_cpu, source = server_cpu1 - server_cpu0, "schedstat"
    else:
        server_cpu, source = server_ticks, "stat"
    return {
        "complete": complete,
        "expected": expected,
        "delivered": delivered_at_end,
        "delivered_after_settle": counter.messages,
        "frames": frames,
        "wall_s": wall,
        "msgs_per_s": delivered_at_end / wall if wall > 0 else 0.0,
        "server_cpu_s": server_cpu,
        "server_cpu_source": source,
        "server_cpu_stat_s": server_ticks,
        "server_cpu_us_per_msg": server_cpu * 1e6 / delivered_at_end if delivered_at_end else 0.0,
        "server_cpu_us_per_frame": server_cpu * 1e6 / frames if frames else 0.0,
        "server_cpu_util": server_cpu / wall if wall > 0 else 0.0,
        "client_cpu_s": own_cpu1 - own_cpu0,
        "client_cpu_util": (own_cpu1 - own_cpu0) / wall if wall > 0 else 0.0,
        # Everything else on the machine in the same window (other processes, kernel
        # softirq work not charged to either process): a noise indicator, clock-tick precise.
        "other_cpu_util": max(0.0, (system1 - system0) - server_ticks - (own_cpu1 - own_cpu0))
        / wall
        if wall > 0
        else 0.0,
    }


def _percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return 0.0
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


async def _paced(
    *,
    dialect: Dialect,
    publisher: WsClient,
    counter: Counter,
    clients: int,
    messages: int,
    rate: float,
    timeout: float,
    server_pid: int,
) -> dict[str, Any]:
    """`messages` single broadcasts, one every 1/`rate` s; latency of every receipt.

    A receipt is charged to the latest broadcast sent before it arrived, which is exact as
    long as each broadcast reached everyone before the next one left (`overlapped` counts
    broadcasts sent while the previous one was still being delivered)."""
    expected = clients * messages
    counter.arm(expected, stamps=True)
    request = dialect.trigger()
    sent: list[float] = []
    overlapped = 0
    loop = asyncio.get_running_loop()
    server_cpu0 = process_cpu_precise(server_pid)
    start = loop.time()
    for index in range(messages):
        delay = start + index / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if counter.messages < clients * index:
            overlapped += 1
        sent.append(time.perf_counter())
        publisher.send_text(request)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await counter.done.wait()
    complete = counter.done.is_set()
    server_cpu1 = process_cpu_precise(server_pid)
    stamps = counter.stamps or []
    counter.stamps = None
    latencies: list[float] = []
    index = 0
    for at, count in stamps:
        while index + 1 < len(sent) and sent[index + 1] <= at:
            index += 1
        latencies.extend([(at - sent[index]) * 1000.0] * count)
    latencies.sort()
    return {
        "complete": complete,
        "expected": expected,
        "delivered": counter.messages,
        "frames": counter.frames,
        "rate": rate,
        "overlapped": overlapped,
        "p50_ms": _percentile(latencies, 0.50),
        "p99_ms": _percentile(latencies, 0.99),
        "max_ms": latencies[-1] if latencies else 0.0,
        # The whole paced window, idle time included (timers, pings), over every receipt.
        "server_cpu_us_per_msg": (server_cpu1 - server_cpu0) * 1e6 / counter.messages
        if server_cpu0 is not None and server_cpu1 is not None and counter.messages
        else 0.0,
    }


async def _throughput_runs(
    args: argparse.Namespace,
    dialect: Dialect,
    publisher: WsClient,
    counter: Counter,
    runs: list[dict[str, Any]],
) -> dict[str, Any]:
    """One warm-up burst, then `--repeat` measured ones appended to `runs`."""
    burst = functools.partial(
        _burst,
        dialect=dialect,
        publisher=publisher,
        counter=counter,
        clients=args.clients,
        server_pid=args.server_pid,
        timeout=args.burst_timeout,
        mode=args.mode,
    )
    warmup = await burst(messages=args.warmup)
    log(f"{args.kind}: warm-up {warmup['msgs_per_s']:.0f} msg/s")
    for index in range(args.repeat):
        result = await burst(messages=args.messages)
        runs.append(result)
        log(
            f"{args.kind}: run {index + 1}/{args.repeat}: {result['msgs_per_s']:.0f} msg/s, "
            f"server {result['server_cpu_us_per_msg']:.2f} us/msg, "
            f"{result['delivered']}/{result['expected']} delivered"
        )
    return warmup


async def _latency_runs(
    args: argparse.Namespace,
    dialect: Dialect,
    publisher: WsClient,
    counter: Counter,
    runs: list[dict[str, Any]],
) -> dict[str, Any]:
    """A warm-up at the highest rate, then `--repeat` runs per rate appended to `runs`."""
    paced = functools.partial(
        _paced,
        dialect=dialect,
        publisher=publisher,
        counter=counter,
        clients=args.clients,
        timeout=args.burst_timeout,
        server_pid=args.server_pid,
    )
    warmup = await paced(messages=args.warmup, rate=max(args.rates))
    for index in range(args.repeat):
        for rate in args.rates:
            result = await paced(messages=args.messages, rate=rate)
            runs.append(result)
            log(
                f"{args.kind}: {rate:g}/s run {index + 1}/{args.repeat}: "
                f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, "
                f"{result['delivered']}/{result['expected']} delivered"
            )
    return warmup


async def run(args: argparse.Namespace) -> dict[str, Any]:
    raise_fd_limit(args.clients + 1024)
    url = urlsplit(args.url)
    assert url.hostname is not None and url.port is not None
    counter = Counter()
    target = Target(url.hostname, url.port, counter)
    dialect = DIALECTS[args.kind](encode_payload(make_payload(args.payload_bytes)))
    rss_before = process_rss_kib(args.server_pid)

    started = time.perf_counter()
    subscribers = await _gather_limited(
        [lambda: dialect.connect(target, join=True) for _ in range(args.clients)],
        args.connect_concurrency,
    )
    publisher = await dialect.connect(target, join=False)
    setup_s = time.perf_counter() - started
    everyone = [*subscribers, publisher]
    for client in subscribers:
        client.counting = True
    log(f"{args.kind}: {len(subscribers)} subscribers joined in {setup_s:.1f}s")
    await asyncio.sleep(SETTLE_SECONDS)
    rss_connected = process_rss_kib(args.server_pid)

    keepalive = None
    if dialect.keepalive is not None:
        keepalive = asyncio.create_task(_keepalive(everyone, dialect.keepalive, 10.0))
    runs: list[dict[str, Any]] = []
    try:
        if args.mode == "latency":
            warmup = await _latency_runs(args, dialect, publisher, counter, runs)
        else:
            warmup = await _throughput_runs(args, dialect, publisher, counter, runs)
    finally:
        if keepalive is not None:
            keepalive.cancel()
        closed_early = sum(1 for c in subscribers if c.closed.done())
        for client in everyone:
            client.close()
    return {
        "kind": args.kind,
        "mode": args.mode,
        "clients": args.clients,
        "messages": args.messages,
        "payload_bytes": args.payload_bytes,
        "setup_s": setup_s,
        "server_rss_kib_before": rss_before,
        "server_rss_kib_connected": rss_connected,
        "subscribers_closed_by_server": closed_early,
        "warmup": warmup,
        "runs": runs,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=sorted(DIALECTS), required=True)
    parser.add_argument("--url", required=True, help="http://127.0.0.1:PORT")
    parser.add_argument("--server-pid", type=int, required=True)
    parser.add_argument(
        "--mode",
        choices=("trigger", "burst", "context", "latency"),
        default="trigger",
        help="trigger: one publisher request per broadcast; burst: one request for all; "
        "context: one request, the server starts one task per broadcast; latency: one "
        "trigger every 1/rate s",
    )
    parser.add_argument(
        "--rates", default="2,5", help="latency mode: broadcasts per second, comma-separated"
    )
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--payload-bytes", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=20, help="messages in the warm-up burst")
    parser.add_argument("--burst-timeout", type=float, default=120.0)
    parser.add_argument("--connect-concurrency", type=int, default=50)
    args = parser.parse_args()
    args.rates = [float(r) for r in args.rates.split(",") if r.strip()]
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        result = asyncio.run(run(args))
    else:  # the client is not under test: give it the cheapest loop available
        result = uvloop.run(run(args))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
