"""Where an idle WebSocket hub connection's memory goes (tracemalloc), and what it costs.

    .venv/bin/python bench/idle_memory.py --connections 2000

Starts a child process that serves one `HubServer` under uvicorn with hero's `server_config`
(uvloop when installed, uvicorn's websockets-sansio protocol, as `hero serve` runs). Its hub
puts every connection in three groups on connect (`user:`, `tenant:`, one of 100
`channel:`s). The child starts tracemalloc (`--frames` deep) and takes a baseline snapshot
after one warm-up connection. This process then opens `--connections` WebSocket connections
(without negotiate), sends the JSON handshake to each and waits for its answer. The child
then takes a second snapshot. It prints the heap growth per connection grouped by the owning
source file (the innermost frame inside hero, uvicorn, websockets or asyncio) and the top
tracebacks, counts the asyncio tasks per connection by coroutine and the live objects per
connection by type (gc), and gives the RSS growth per connection. tracemalloc makes the
child slower and bigger: its RSS figure is higher than an untraced run, so `--no-trace`
measures RSS alone. `--offer-deflate` makes the clients offer permessage-deflate, as
browsers and Node's `ws` do, and `--server-compression` makes the server accept it
(`Realtime:WebSocketCompression`).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import os
import socket
import subprocess
import sys
import threading
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import Counter, WsClient, process_rss_kib, raise_fd_limit, ws_connect

RS = b"\x1e"
TIMEOUT = 30.0
OWNERS = ("hero/", "uvicorn/", "websockets/", "asyncio/", "starlette/", "h11/", "httptools/")


def log(message: str) -> None:
    print(f"[idle_memory] {message}", file=sys.stderr, flush=True)


# -- the child: the server -----------------------------------------------------------------


def owner(trace: tracemalloc.Traceback) -> str:
    """Who asked for the allocation: the innermost frame in hero, uvicorn, websockets, ...
    (asyncio's own frames are skipped when a caller is known, so a Task is counted where it
    was created). File path from the package on."""
    found = ""
    for frame in reversed(trace):  # most recent call last: walk from the allocation out
        name = frame.filename.replace("\\", "/")
        for package in OWNERS:
            index = name.rfind("/" + package)
            if index >= 0:
                where = f"{name[index + 1 :]}:{frame.lineno}"
                if package != "asyncio/":
                    return where
                found = found or where
    if found:
        return found
    last = trace[-1]
    return f"{Path(last.filename).name}:{last.lineno}"


def report(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, count: int) -> None:
    stats = after.compare_to(before, "traceback")
    by_owner: collections.Counter[str] = collections.Counter()
    by_file: collections.Counter[str] = collections.Counter()
    for stat in stats:
        where = owner(stat.traceback)
        by_owner[where] += stat.size_diff
        by_file[where.rsplit(":", 1)[0]] += stat.size_diff
    total = sum(stat.size_diff for stat in stats)
    print(f"traced heap growth: {total / count / 1024:.2f} KiB per connection")
    by_package: collections.Counter[str] = collections.Counter()
    for where, size in by_file.items():
        by_package[where.split("/", 1)[0] if "/" in where else "other"] += size
    print("\nby package (KiB per connection):")
    for where, size in by_package.most_common():
        print(f"  {size / count / 1024:7.3f}  {where}")
    print("\nby file (KiB per connection):")
    for where, size in by_file.most_common(25):
        print(f"  {size / count / 1024:7.3f}  {where}")
    print("\nby line (KiB per connection):")
    for where, size in by_owner.most_common(80):
        print(f"  {size / count / 1024:7.3f}  {where}")


def count_objects() -> collections.Counter[str]:
    gc.collect()
    return collections.Counter(type(o).__qualname__ for o in gc.get_objects())


def task_kinds() -> collections.Counter[str]:
    kinds: collections.Counter[str] = collections.Counter()
    for task in asyncio.all_tasks():
        coro: Any = task.get_coro()
        kinds[getattr(coro, "__qualname__", repr(coro))] += 1
    return kinds


def serve(frames: int, trace: bool, compression: bool) -> None:
    import uvicorn

    from hero.platform.http_server import HttpLimits, server_config
    from hero.realtime import Hub, HubServer

    class IdleHub(Hub):
        async def on_connected(self) -> None:
            connection_id = self.context.connection_id
            await self.groups.add(connection_id, f"user:{connection_id}")
            await self.groups.add(connection_id, "tenant:bench")
            # and one of 100 channels, as a chat member would be (the three groups)
            await self.groups.add(
                connection_id, f"channel:{zlib.crc32(connection_id.encode()) % 100}"
            )

    hub = HubServer(IdleHub)
    state: dict[str, Any] = {}

    async def command(line: str, count: int) -> None:
        if line == "baseline":
            gc.collect()
            state["objects"] = count_objects()
            state["tasks"] = task_kinds()
            state["rss"] = process_rss_kib(os.getpid())
            if trace:
                state["snapshot"] = tracemalloc.take_snapshot()
        elif line == "measure":
            gc.collect()
            rss = process_rss_kib(os.getpid())
            print(f"connections: {count}")
            print(f"RSS growth: {(rss - state['rss']) / count:.2f} KiB per connection")
            if trace:
                report(state["snapshot"], tracemalloc.take_snapshot(), count)
            tasks = task_kinds() - state["tasks"]
            print(f"\nasyncio tasks per connection: {sum(tasks.values()) / count:.2f}")
            for name, n in tasks.most_common(10):
                print(f"  {n / count:5.2f}  {name}")
            objects = count_objects() - state["objects"]
            print(f"\nlive objects per connection: {sum(objects.values()) / count:.1f}")
            for name, n in objects.most_common(30):
                if n >= count // 2:
                    print(f"  {n / count:5.2f}  {name}")
            print("done", flush=True)

    async def main() -> None:
        config = server_config(
            hub,
            limits=HttpLimits(),
            maximum_receive_message_size=32_768,
            websocket_compression=compression,
        )
        server = uvicorn.Server(config)
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[str] = asyncio.Queue()

        def read_stdin() -> None:
            for line in sys.stdin:
                loop.call_soon_threadsafe(lines.put_nowait, line.strip())
            loop.call_soon_threadsafe(lines.put_nowait, "quit")

        threading.Thread(target=read_stdin, daemon=True).start()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(4096)  # connections wait in the backlog until uvicorn serves them
        serving = asyncio.ensure_future(server.serve(sockets=[sock]))
        print(f"port {sock.getsockname()[1]}", flush=True)
        while True:
            line = await lines.get()
            if line == "quit":
                break
            name, _, count = line.partition(" ")
            await command(name, int(count or 1))
        server.should_exit = True
        await serving

    if trace:
        tracemalloc.start(frames)
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())


# -- the parent: the clients ---------------------------------------------------------------


DEFLATE = b"permessage-deflate; client_max_window_bits"
"""What browsers and the Node `ws` client offer."""


async def open_one(port: int, offer: bool) -> WsClient:
    extensions = DEFLATE if offer else b""
    client = await ws_connect(
        "127.0.0.1", port, "/", Counter(), timeout=TIMEOUT, extensions=extensions
    )
    client.send_text(b'{"protocol":"json","version":1}' + RS)
    answer = await client.receive(TIMEOUT)
    if not offer and not answer.startswith(b"{}"):  # (compressed when deflate was accepted)
        raise ConnectionError(f"handshake answered {answer!r}")
    return client


async def drive(args: argparse.Namespace, child: subprocess.Popen[str]) -> None:
    assert child.stdin is not None and child.stdout is not None
    try:
        first = await asyncio.to_thread(child.stdout.readline)
        port = int(first.split()[1])
        clients = [
            await open_one(port, args.offer_deflate)
        ]  # warm-up: first-use caches are not per connection
        child.stdin.write("baseline 1\n")
        await asyncio.sleep(0.5)  # let the child answer before connections arrive
        log(f"opening {args.connections} connections")
        for start in range(0, args.connections, 100):
            batch = range(start, min(start + 100, args.connections))
            clients += await asyncio.gather(*(open_one(port, args.offer_deflate) for _ in batch))
        await asyncio.sleep(2.0)  # the server settles (keep-alive ticks, flushes)
        child.stdin.write(f"measure {args.connections}\n")
        while True:
            line = await asyncio.to_thread(child.stdout.readline)
            if not line or line.strip() == "done":
                break
            print(line, end="")
        for client in clients:
            client.close()
    finally:
        child.stdin.close()
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--frames", type=int, default=8, help="traceback depth")
    parser.add_argument("--no-trace", action="store_true", help="RSS only, no tracemalloc")
    parser.add_argument(
        "--offer-deflate",
        action="store_true",
        help="clients offer permessage-deflate, as browsers and Node's ws do",
    )
    parser.add_argument(
        "--server-compression",
        action="store_true",
        help="the server accepts it (Realtime:WebSocketCompression=true)",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    raise_fd_limit(args.connections * 2 + 256)
    if args.serve:
        serve(args.frames, not args.no_trace, args.server_compression)
    else:
        argv = [sys.executable, __file__, "--serve", "--frames", str(args.frames)]
        if args.no_trace:
            argv.append("--no-trace")
        if args.server_compression:
            argv.append("--server-compression")
        child = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        asyncio.run(drive(args, child))


if __name__ == "__main__":
    main()
