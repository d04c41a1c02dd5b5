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
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchlib import (
    Counter,
    WsClient,
    drain,
    git_state,
    machine_info,
    package_versions,
    process_cpu_seconds,
    process_rss_kib,
    raise_fd_limit,
    ws_connect,
)
from hero.auth import mint_token

ROOT = Path(__file__).resolve().parents[1]
RS = b"\x1e"
KEY = "bench-signing-key-" + "k" * 32
STEP_TIMEOUT = 30.0
SETTLE_SECONDS = 2.0


def log(message: str) -> None:
    print(f"[connections] {message}", file=sys.stderr, flush=True)


def start_serve(workdir: Path) -> tuple[subprocess.Popen[str], int]:
    env = dict(os.environ)
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "JwtOptions__SigningKey": KEY,
            "RateLimiting__Enabled": "false",
        }
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "hero", "serve", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=workdir,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    port = None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        found = re.search(r"serving on http://127\.0\.0\.1:(\d+)", line)
        if found:
            port = int(found.group(1))
        if port is not None and "startup complete" in line:
            drain(process)
            return process, port
    process.kill()
    raise RuntimeError("hero serve did not start")


async def negotiate(port: int, token: str) -> str:
    async with asyncio.timeout(STEP_TIMEOUT):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(
                f"POST /realtime/hub/negotiate?negotiateVersion=1 HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
                "Content-Length: 0\r\nConnection: close\r\n\r\n".encode()
            )
            raw = await reader.read()
        finally:
            writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    if b" 200 " not in head.split(b"\r\n", 1)[0]:
        raise ConnectionError(head.split(b"\r\n", 1)[0].decode("latin-1"))
    connection_token: str = json.loads(body)["connectionToken"]
    return connection_token


async def connect(port: int, token: str) -> WsClient:
    connection_token = await negotiate(port, token)
    client = await ws_connect(
        "127.0.0.1",
        port,
        f"/realtime/hub?id={connection_token}&access_token={token}",
        Counter(),
        timeout=STEP_TIMEOUT,
    )
    client.send_text(b'{"protocol":"json","version":1}' + RS)
    reply = await client.receive(STEP_TIMEOUT)
    if not reply.startswith(b"{}" + RS):
        raise ConnectionError(f"handshake failed: {reply!r}")
    return client


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
    with tempfile.TemporaryDirectory(prefix="hero-connections-") as workdir:
        process, port = start_serve(Path(workdir))
        try:
            result = asyncio.run(run(args, process.pid, port))
        finally:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
    report = {
        "benchmark": "connections",
        "command": "python bench/connections.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine_info(),
        "versions": package_versions(["uvicorn", "uvloop", "websockets", "PyJWT"]),
        "code": git_state(ROOT),
        "result": result,
    }
    default = ROOT / "bench" / "results" / f"connections-{time.strftime('%Y-%m-%d')}.json"
    (args.output or default).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
