"""Connections: how fast they are made, and what an idle one costs the server.

    .venv/bin/python bench/connections.py --connections 10000

Starts `hero serve` on the embedded defaults (a temporary directory with its own SQLite file,
a fixed signing key, `RateLimiting:Enabled=false` since every client comes from 127.0.0.1)
and, after one warm-up connection per user (`--users`), opens `--connections` more hub
connections, round robin over the users, the way the official client does: `POST
/realtime/hub/negotiate` with a bearer token (minted here with the server's key; one user per
connection, so each negotiate validates its own JWT), a WebSocket with `access_token` in the
query, the JSON handshake. AppHub's `on_connected` puts each connection in its `user:` and
`tenant:` groups (2 groups per connection; the users belong to no channel), and each user's
first connection sends `PresenceChanged` to its tenant: `--users-per-tenant` (100) users
share a tenant, since one tenant of N users costs N²/2 presence deliveries to connect.

Reports: connections per second over the whole opening phase (`--concurrency` at a time),
the server's RSS before and after and per connection, and its CPU per connection. Loopback
only, bounded by timeouts; writes bench/results/connections-<date>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchlib import WsClient, process_cpu_seconds, process_rss_kib, raise_fd_limit
from hero.auth import mint_token
from herobench import hero_server, signalr_connect, write_report

KEY = "bench-signing-key-" + "k" * 32
SETTLE_SECONDS = 2.0


def log(message: str) -> None:
    print(f"[connections] {message}", file=sys.stderr, flush=True)


async def connect(port: int, token: str) -> WsClient:
    return await signalr_connect(port, "/realtime/hub", token=token)


async def run(args: argparse.Namespace, pid: int, port: int) -> dict[str, Any]:
    users = [
        mint_token(
            KEY,
            "hero.local",
            "hero.clients",
            uuid.uuid4(),
            tenant=f"t{index // args.users_per_tenant}",
            ttl_seconds=3600,
        )
        for index in range(args.users)
    ]
    semaphore = asyncio.Semaphore(args.concurrency)
    warm: list[WsClient] = []
    clients: list[WsClient] = []

    async def one(token: str, into: list[WsClient]) -> None:
        async with semaphore:
            into.append(await connect(port, token))

    # Warm-up, not counted: every user connects once and stays (the server learns the user,
    # and its tenant hears one PresenceChanged); the measured connections are the users'
    # further ones, as when clients reconnect or open more tabs.
    await asyncio.gather(*(one(t, warm) for t in users))
    await asyncio.sleep(SETTLE_SECONDS)
    rss_before = process_rss_kib(pid)
    cpu_before = process_cpu_seconds(pid)
    tokens = [users[i % len(users)] for i in range(args.connections)]
    start = time.perf_counter()
    await asyncio.gather(*(one(t, clients) for t in tokens))
    seconds = time.perf_counter() - start
    cpu = process_cpu_seconds(pid) - cpu_before
    opened = len(clients)
    await asyncio.sleep(SETTLE_SECONDS)
    rss_after = process_rss_kib(pid)
    for client in [*warm, *clients]:
        client.close()
    return {
        "connections": opened,
        "users": args.users,
        "users_per_tenant": args.users_per_tenant,
        "concurrency": args.concurrency,
        "groups_per_connection": 2,
        "seconds": round(seconds, 2),
        "connections_per_second": round(opened / seconds),
        "server_cpu_ms_per_connection": round(cpu / opened * 1000, 3),
        "server_rss_kib_before": rss_before,
        "server_rss_kib_after": rss_after,
        "server_rss_kib_per_connection": round((rss_after - rss_before) / opened, 2),
    }


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
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    raise_fd_limit(args.connections * 2 + 200)
    env = {"JwtOptions__SigningKey": KEY, "RateLimiting__Enabled": "false"}
    with (
        tempfile.TemporaryDirectory(prefix="hero-connections-") as workdir,
        hero_server("serve", env, cwd=Path(workdir)) as (process, port),
    ):
        result = asyncio.run(run(args, process.pid, port))
    write_report("connections", args.output, {"result": result}, ("PyJWT",))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
