"""The comparison servers of bench/fanout.py, one per process.

    python bench/fanout_servers.py hero-bench  # hero + BenchHub (ConformanceHub + Burst)
    python bench/fanout_servers.py socketio    # python-socketio, ASGI app under uvicorn
    python bench/fanout_servers.py ceiling     # bare `websockets` broadcast, no framework

Each binds 127.0.0.1 on a free port and prints `... listening on http://127.0.0.1:<port>`
(the same banner as `hero conformance-server`). All of them use the event loop that
`hero conformance-server` uses: the CLI starts uvicorn with `Server.run`, whose default
`loop="auto"` picks uvloop when it is installed and the standard asyncio loop otherwise. The
uvicorn servers here start the same way; the ceiling applies the same rule itself
(`loop_factory`). So the comparison differs only in the framework.

Wire contract used by bench/fanout_client.py (a "burst" is one request from the publisher
that makes the server send `count` messages to the group in one go, without yielding):
- hero-bench: the ConformanceHub at /conformance plus `Burst(group, target, arg, count)` and
  `Scatter(group, target, arg, count)`: `count` independent `HubContext` sends, each its own
  task (as `count` unrelated pieces of application code would send).
- socketio: `join(room)` enters the room and acks `true`; `echo(payload)` returns it (an
  ack when asked for, nothing otherwise); `publish(payload)` emits
  `tick(payload)` to room "bench"; `burst(payload, count)` does that `count` times;
  `scatter(payload, count)` starts `count` tasks that each emit once.
- ceiling: text frame "J" joins the group (answered with "J"); "P<payload>" sends <payload>
  to every member with `websockets.broadcast` (one write per member, no queueing);
  "B<count>:<payload>" does that `count` times; "S<count>:<payload>" schedules `count`
  separate loop callbacks that each broadcast once.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from collections.abc import Callable
from typing import Any

from benchlib import raise_fd_limit

HOST = "127.0.0.1"


def bind() -> socket.socket:
    # As in src/hero/cli.py: with proto IPPROTO_TCP (not 0) asyncio sets TCP_NODELAY on every
    # accepted socket, so all servers in the comparison run with Nagle off.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def banner(name: str, sock: socket.socket) -> None:
    print(f"{name} listening on http://{HOST}:{sock.getsockname()[1]}", flush=True)


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvicorn's `loop="auto"` rule: uvloop when installed, else the standard asyncio loop."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _uvicorn(app: Any, name: str) -> None:
    import uvicorn

    sock = bind()
    banner(name, sock)
    # The same uvicorn settings and start-up as `hero conformance-server` (src/hero/cli.py):
    # `Server.run` with the default loop="auto", i.e. uvloop when installed.
    config = uvicorn.Config(app, log_level="warning", ws_max_size=16 * 1024 * 1024, lifespan="on")
    server = uvicorn.Server(config)
    server.run(sockets=[sock])


def serve_hero_bench() -> None:
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette

    from hero.realtime import HubRoute, HubServer, hub_method
    from hero.realtime.testing import ConformanceHub

    class BenchHub(ConformanceHub):
        @hub_method
        async def burst(self, name: str, target: str, arg: Any, count: int) -> None:
            group = self.clients.group(name)
            for _ in range(count):
                await group.send(target, arg)

        @hub_method
        async def scatter(self, name: str, target: str, arg: Any, count: int) -> None:
            for _ in range(count):
                task = asyncio.ensure_future(hub.context.clients.group(name).send(target, arg))
                pending.add(task)
                task.add_done_callback(pending.discard)

    pending: set[asyncio.Future[None]] = set()
    hub = HubServer(BenchHub)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with hub.lifespan():
            yield

    app = Starlette(routes=[HubRoute("/conformance", hub)], lifespan=lifespan)
    _uvicorn(app, "hero-bench")


def serve_socketio() -> None:
    import socketio

    sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins=[], logger=False)

    @sio.on("join")  # type: ignore[untyped-decorator]
    async def join(sid: str, room: str) -> bool:
        await sio.enter_room(sid, room)
        return True

    @sio.on("echo")  # type: ignore[untyped-decorator]
    async def echo(sid: str, data: Any) -> Any:
        return data  # acknowledged when the client asked for it (fanout_more.py inbound)

    @sio.on("publish")  # type: ignore[untyped-decorator]
    async def publish(sid: str, data: Any) -> None:
        await sio.emit("tick", data, to="bench")

    @sio.on("burst")  # type: ignore[untyped-decorator]
    async def burst(sid: str, data: Any, count: int) -> None:
        for _ in range(count):
            await sio.emit("tick", data, to="bench")

    pending: set[asyncio.Future[None]] = set()

    @sio.on("scatter")  # type: ignore[untyped-decorator]
    async def scatter(sid: str, data: Any, count: int) -> None:
        for _ in range(count):
            task = asyncio.ensure_future(sio.emit("tick", data, to="bench"))
            pending.add(task)
            task.add_done_callback(pending.discard)

    _uvicorn(socketio.ASGIApp(sio), "python-socketio")


def serve_ceiling() -> None:
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    group: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        try:
            async for data in ws:
                message = data.decode() if isinstance(data, bytes) else data
                if message[:1] == "P":
                    broadcast(group, message[1:])
                elif message[:1] == "B":
                    count, _, payload = message[1:].partition(":")
                    for _ in range(int(count)):
                        broadcast(group, payload)
                elif message[:1] == "S":
                    count, _, payload = message[1:].partition(":")
                    loop = asyncio.get_running_loop()
                    for _ in range(int(count)):
                        loop.call_soon(broadcast, group, payload)
                elif message == "J":
                    group.add(ws)
                    await ws.send("J")
        finally:
            group.discard(ws)

    async def main() -> None:
        sock = bind()
        banner("websockets-ceiling", sock)
        async with serve(handler, sock=sock, compression=None, max_size=16 * 1024 * 1024) as srv:
            await srv.serve_forever()

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server", choices=("hero-bench", "socketio", "ceiling"))
    args = parser.parse_args()
    raise_fd_limit(65536)
    if args.server == "hero-bench":
        serve_hero_bench()
    elif args.server == "socketio":
        serve_socketio()
    else:
        serve_ceiling()
    return 0


if __name__ == "__main__":
    sys.exit(main())
