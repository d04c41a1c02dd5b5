"""The client side of bench/fanout_more.py: one process, every connection, one JSON line out.

    python bench/fanout_more_client.py inbound --kind hero --url URL --server-pid PID
    python bench/fanout_more_client.py fanout --target URL,PID,CLIENTS,TRANSPORT [--target ...]

inbound: `--clients` connections each send `--rate` invocations a second for `--duration`
seconds (paced by the clock, open loop). `--style result`: hero `Echo(payload)` with an
invocation id (a Completion comes back), python-socketio `emit("echo", payload)` with an ack
id (the handler's return value comes back); every reply is counted. `--style fire`: the same
calls without id (nothing comes back), followed by one `result` call per connection as the
end marker. Server CPU from the first send until the last reply, per invocation sent.

fanout: subscribers on one or more `hero conformance-server` targets, each
`url,server-pid,clients,transport` (transport: ws-json, ws-msgpack, sse, longpolling), all
in group "bench"; a WebSocket JSON publisher on the first target sends `--messages`
`SendToGroup` triggers back to back. Per target: delivered messages and the time the last one
arrived; the CPU of every target process and of each `--extra-pid` (valkey-server).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import msgpack

from benchlib import (
    Counter,
    WsClient,
    encode_payload,
    http_post,
    make_payload,
    process_cpu_precise,
    raise_fd_limit,
    system_busy_seconds,
    ws_connect,
)
from fanout_client import GROUP, RS, HeroDialect, SocketIODialect, Target, _gather_limited
from http_clients import LongPollClient, SseClient, http_send, open_http

STEP_TIMEOUT = 30.0
SETTLE_SECONDS = 0.5
TRANSPORTS = ("ws-json", "ws-msgpack", "sse", "longpolling")


def log(message: str) -> None:
    print(f"[fanout-more-client] {message}", file=sys.stderr, flush=True)


def cpu(pid: int) -> float:
    value = process_cpu_precise(pid)
    if value is None:
        raise RuntimeError(f"no /proc/{pid}/task/*/schedstat")
    return value


# -- inbound -------------------------------------------------------------------------------


def hero_invocation(payload: str, invocation_id: int | None) -> bytes:
    head = (
        b'{"type":1,'
        if invocation_id is None
        else b'{"type":1,"invocationId":"%d",' % (invocation_id)
    )
    return head + b'"target":"Echo","arguments":[' + payload.encode() + b"]}" + RS


def socketio_event(payload: str, ack_id: int | None) -> bytes:
    ack = b"" if ack_id is None else str(ack_id).encode()
    return b"42" + ack + b'["echo",' + payload.encode() + b"]"


async def inbound(args: argparse.Namespace) -> dict[str, Any]:
    url = urlsplit(args.url)
    assert url.hostname is not None and url.port is not None
    counter = Counter()
    payload = encode_payload(make_payload(args.payload_bytes))
    dialect = (HeroDialect if args.kind == "hero" else SocketIODialect)(payload)
    build = hero_invocation if args.kind == "hero" else socketio_event
    target = Target(url.hostname, url.port, counter)
    started = time.perf_counter()
    clients = await _gather_limited(
        [lambda: dialect.connect(target, join=False) for _ in range(args.clients)], 50
    )
    log(f"{args.kind}: {len(clients)} connected in {time.perf_counter() - started:.1f}s")
    for client in clients:
        client.counting = True
    keepalive = None
    if dialect.keepalive is not None:
        keepalive = asyncio.create_task(_keepalive(clients, dialect.keepalive))
    runs: list[dict[str, Any]] = []
    next_id = [0]
    try:
        warmup = await _paced_window(
            args,
            clients=clients,
            counter=counter,
            build=build,
            next_id=next_id,
            duration=args.warmup,
        )
        log(f"{args.kind}: warm-up {warmup['invocations_per_s']:.0f} inv/s")
        for index in range(args.repeat):
            result = await _paced_window(
                args,
                clients=clients,
                counter=counter,
                build=build,
                next_id=next_id,
                duration=args.duration,
            )
            runs.append(result)
            log(
                f"{args.kind} {args.style}: run {index + 1}/{args.repeat}: "
                f"{result['invocations_per_s']:.0f} inv/s, "
                f"server {result['server_cpu_us_per_invocation']:.2f} us/inv, "
                f"{result['replies']}/{result['expected_replies']} replies"
            )
    finally:
        if keepalive is not None:
            keepalive.cancel()
        closed = sum(1 for c in clients if c.closed.done())
        for client in clients:
            client.close()
    return {
        "kind": args.kind,
        "style": args.style,
        "clients": args.clients,
        "rate": args.rate,
        "duration_s": args.duration,
        "closed_by_server": closed,
        "warmup": warmup,
        "runs": runs,
    }


async def _keepalive(clients: list[WsClient], frame: bytes) -> None:
    while True:
        await asyncio.sleep(10.0)
        for client in clients:
            client.send_text(frame)


async def _paced_window(
    args: argparse.Namespace,
    *,
    clients: list[WsClient],
    counter: Counter,
    build: Any,
    next_id: list[int],
    duration: float,
) -> dict[str, Any]:
    """Every client sends `rate` invocations a second for `duration` s, spread over
    SLOTS sub-intervals so that the load is even; then wait for the replies."""
    slots = 10
    ticks = round(args.rate * slots * duration)
    groups = [clients[i::slots] for i in range(slots)]
    sent_per_tick = [len(groups[t % slots]) for t in range(ticks)]
    sent = sum(sent_per_tick)
    result_style = args.style == "result"
    counter.arm(sent if result_style else len(clients))
    payload = encode_payload(make_payload(args.payload_bytes))
    fire = build(payload, None)
    loop = asyncio.get_running_loop()
    server0 = cpu(args.server_pid)
    own0 = time.process_time()
    system0 = system_busy_seconds()
    start_wall = time.perf_counter()
    start = loop.time()
    late = 0.0
    for tick in range(ticks):
        delay = start + tick / (args.rate * slots) - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            late = max(late, -delay)
        for client in groups[tick % slots]:
            if result_style:
                next_id[0] += 1
                client.send_text(build(payload, next_id[0]))
            else:
                client.send_text(fire)
    sent_wall = time.perf_counter() - start_wall
    if not result_style:  # one call with a reply per connection marks the end
        for client in clients:
            next_id[0] += 1
            client.send_text(build(payload, next_id[0]))
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(args.drain_timeout):
            await counter.done.wait()
    complete = counter.done.is_set()
    end = counter.last if complete else time.perf_counter()
    server1 = cpu(args.server_pid)
    own1 = time.process_time()
    system1 = system_busy_seconds()
    replies = counter.messages
    await asyncio.sleep(SETTLE_SECONDS)
    wall = end - start_wall
    calls = sent + (0 if result_style else len(clients))
    server_cpu = server1 - server0
    own = own1 - own0
    return {
        "complete": complete,
        "invocations": calls,
        "expected_replies": counter.target,
        "replies": replies,
        "send_s": sent_wall,
        "wall_s": wall,
        "drain_s": wall - sent_wall,
        "pacer_max_late_s": late,
        "invocations_per_s": calls / wall if wall > 0 else 0.0,
        "server_cpu_s": server_cpu,
        "server_cpu_us_per_invocation": server_cpu * 1e6 / calls if calls else 0.0,
        "server_cpu_util": server_cpu / wall if wall > 0 else 0.0,
        "client_cpu_util": own / wall if wall > 0 else 0.0,
        "other_cpu_util": max(0.0, (system1 - system0) - server_cpu - own) / wall
        if wall > 0
        else 0.0,
    }


# -- fan-out over several transports and instances ----------------------------------------


@dataclass
class FanoutTarget:
    host: str
    port: int
    pid: int
    clients: int
    transport: str
    counter: Counter = field(default_factory=Counter)
    subscribers: list[Any] = field(default_factory=list)


def _parse_target(text: str) -> FanoutTarget:
    url, pid, clients, transport = text.split(",")
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    if transport not in TRANSPORTS:
        raise SystemExit(f"unknown transport {transport!r}")
    return FanoutTarget(parts.hostname, parts.port, int(pid), int(clients), transport)


JOIN_JSON = (
    json.dumps(
        {"type": 1, "invocationId": "j", "target": "JoinGroup", "arguments": [GROUP]},
        separators=(",", ":"),
    ).encode()
    + RS
)


def _msgpack_frame(message: list[Any]) -> bytes:
    body = msgpack.packb(message)
    size, prefix = len(body), bytearray()
    while True:  # 7-bit varint length prefix
        byte = size & 0x7F
        size >>= 7
        prefix.append(byte | (0x80 if size else 0))
        if not size:
            return bytes(prefix) + body


def _msgpack_type(frame: bytes) -> int:
    pos = 0
    while frame[pos] & 0x80:
        pos += 1
    message = msgpack.unpackb(frame[pos + 1 :])
    return int(message[0]) if isinstance(message, list) and message else -1


async def _negotiate(target: FanoutTarget) -> str:
    body = await http_post(
        target.host, target.port, "/conformance/negotiate?negotiateVersion=1", timeout=30
    )
    return str(json.loads(body)["connectionToken"])


async def _subscribe(target: FanoutTarget) -> Any:
    if target.transport == "ws-json":
        dialect = HeroDialect("")
        return await dialect.connect(Target(target.host, target.port, target.counter), True)
    token = await _negotiate(target)
    path = f"/conformance?id={token}"
    if target.transport == "ws-msgpack":
        client = await ws_connect(target.host, target.port, path, target.counter, timeout=30)
        client.send_text(b'{"protocol":"messagepack","version":1}' + RS)
        reply = await client.receive(STEP_TIMEOUT)
        if not reply.startswith(b"{}" + RS):
            raise ConnectionError(f"handshake failed: {reply!r}")
        client._send_frame(0x2, _msgpack_frame([1, {}, "j", "JoinGroup", [GROUP]]))
        async with asyncio.timeout(STEP_TIMEOUT):
            while _msgpack_type(await client.inbox.get()) != 3:
                pass
        return client
    factory = SseClient if target.transport == "sse" else LongPollClient
    stream = await open_http(factory, target.host, target.port, path, target.counter, timeout=30)
    handshake = b'{"protocol":"json","version":1}' + RS
    if await http_send(target.host, target.port, path, handshake, timeout=30) != 200:
        raise ConnectionError("handshake POST refused")
    await stream.wait_for(b"{}" + RS, STEP_TIMEOUT)
    if await http_send(target.host, target.port, path, JOIN_JSON, timeout=30) != 200:
        raise ConnectionError("JoinGroup POST refused")
    await stream.wait_for(b'"type":3', STEP_TIMEOUT)
    return stream


async def fanout(args: argparse.Namespace) -> dict[str, Any]:
    targets = [_parse_target(t) for t in args.target]
    payload = encode_payload(make_payload(args.payload_bytes))
    started = time.perf_counter()
    for target in targets:
        target.subscribers = await _gather_limited(
            [lambda t=target: _subscribe(t) for _ in range(target.clients)], 50
        )
    first = targets[0]
    publisher_dialect = HeroDialect(payload)
    publisher = await publisher_dialect.connect(
        Target(first.host, first.port, Counter()), join=False
    )
    log(f"{sum(t.clients for t in targets)} subscribers in {time.perf_counter() - started:.1f}s")
    for target in targets:
        for subscriber in target.subscribers:
            subscriber.counting = True
    await asyncio.sleep(SETTLE_SECONDS)
    ws_clients = [s for t in targets for s in t.subscribers if isinstance(s, WsClient)]
    keepalive = asyncio.create_task(_keepalive([*ws_clients, publisher], HeroDialect.keepalive))
    trigger = publisher_dialect.trigger()
    runs: list[dict[str, Any]] = []
    try:
        warmup = await _fanout_burst(args, targets, publisher, trigger, args.warmup)
        for index in range(args.repeat):
            result = await _fanout_burst(args, targets, publisher, trigger, args.messages)
            runs.append(result)
            log(
                f"run {index + 1}/{args.repeat}: {result['msgs_per_s']:.0f} msg/s, "
                f"{result['delivered']}/{result['expected']} delivered"
            )
    finally:
        keepalive.cancel()
        closed = sum(1 for t in targets for s in t.subscribers if s.closed.done())
        for target in targets:
            for subscriber in target.subscribers:
                subscriber.close()
        publisher.close()
    return {
        "targets": [
            {"transport": t.transport, "clients": t.clients, "port": t.port} for t in targets
        ],
        "messages": args.messages,
        "closed_by_server": closed,
        "warmup": warmup,
        "runs": runs,
    }


async def _fanout_burst(
    args: argparse.Namespace,
    targets: list[FanoutTarget],
    publisher: WsClient,
    trigger: bytes,
    messages: int,
) -> dict[str, Any]:
    for target in targets:
        target.counter.arm(target.clients * messages)
    pids = [t.pid for t in targets] + list(args.extra_pid)
    cpu0 = [cpu(p) for p in pids]
    own0 = time.process_time()
    system0 = system_busy_seconds()
    start = time.perf_counter()
    for _ in range(messages):
        publisher.send_text(trigger)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(args.burst_timeout):
            await asyncio.gather(*(t.counter.done.wait() for t in targets))
    now = time.perf_counter()
    cpu1 = [cpu(p) for p in pids]
    own = time.process_time() - own0
    system = system_busy_seconds() - system0
    per_target = []
    for target in targets:
        done = target.counter.done.is_set()
        wall = (target.counter.last if done else now) - start
        delivered = target.counter.messages
        per_target.append(
            {
                "transport": target.transport,
                "complete": done,
                "expected": target.counter.target,
                "delivered": delivered,
                "frames": target.counter.frames,
                "wall_s": wall,
                "msgs_per_s": delivered / wall if wall > 0 else 0.0,
            }
        )
    wall = max(t["wall_s"] for t in per_target)
    cpus = [b - a for a, b in zip(cpu0, cpu1, strict=True)]
    delivered = sum(t["delivered"] for t in per_target)
    for entry, used in zip(per_target, cpus, strict=False):
        entry["server_cpu_s"] = used
        entry["server_cpu_us_per_msg"] = (
            used * 1e6 / entry["delivered"] if entry["delivered"] else 0.0
        )
        entry["server_cpu_util"] = used / wall if wall > 0 else 0.0
    extra = cpus[len(targets) :]
    await asyncio.sleep(SETTLE_SECONDS)
    return {
        "complete": all(t["complete"] for t in per_target),
        "expected": sum(t["expected"] for t in per_target),
        "delivered": delivered,
        "wall_s": wall,
        "msgs_per_s": delivered / wall if wall > 0 else 0.0,
        "servers_cpu_us_per_msg": sum(cpus[: len(targets)]) * 1e6 / delivered if delivered else 0.0,
        "extra_cpu_s": extra,
        "extra_cpu_us_per_msg": [c * 1e6 / delivered if delivered else 0.0 for c in extra],
        "client_cpu_util": own / wall if wall > 0 else 0.0,
        "other_cpu_util": max(0.0, system - sum(cpus) - own) / wall if wall > 0 else 0.0,
        "targets": per_target,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    one = sub.add_parser("inbound")
    one.add_argument("--kind", choices=("hero", "socketio"), required=True)
    one.add_argument("--url", required=True)
    one.add_argument("--server-pid", type=int, required=True)
    one.add_argument("--clients", type=int, default=1000)
    one.add_argument("--rate", type=float, default=10.0, help="invocations per client per s")
    one.add_argument("--duration", type=float, default=5.0, help="measured seconds per run")
    one.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    one.add_argument("--style", choices=("result", "fire"), default="result")
    one.add_argument("--drain-timeout", type=float, default=60.0)
    many = sub.add_parser("fanout")
    many.add_argument("--target", action="append", required=True)
    many.add_argument("--extra-pid", type=int, action="append", default=[])
    many.add_argument("--messages", type=int, default=200)
    many.add_argument("--warmup", type=int, default=20)
    many.add_argument("--burst-timeout", type=float, default=120.0)
    for p in (one, many):
        p.add_argument("--payload-bytes", type=int, default=100)
        p.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    raise_fd_limit(4 * 1024 + 2 * sum(int(t.split(",")[2]) for t in getattr(args, "target", [])))
    runner = inbound if args.mode == "inbound" else fanout
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        result = asyncio.run(runner(args))
    else:
        result = uvloop.run(runner(args))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
