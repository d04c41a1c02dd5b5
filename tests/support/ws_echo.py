"""A WebSocket echo server on the WebSocket stack `hero serve` runs, for the Autobahn cases.

    python -m tests.support.ws_echo [--port 0]

The hub speaks SignalR, so the Autobahn cases (which expect every message echoed) need a
plain echo endpoint; it exists only here, never in `hero serve`'s app. The uvicorn
configuration is the one `hero serve` runs, from `hero.platform.http_server.server_config`
(its HTTP and WebSocket protocol classes, the 1 MiB WebSocket message bound of the default
32 KB hub message limit), on a pre-bound socket with TCP_NODELAY-capable proto. Prints
`ws-echo listening on http://HOST:PORT` once bound (what `tests.support.servers.launch` waits
for).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
from typing import Any

import uvicorn

from hero.platform.http_server import HttpLimits, server_config
from hero.realtime import READ_FRAMES_EXTENSION, WRITE_FRAME_EXTENSION

HUB_MESSAGE_LIMIT = 32_768
"""`Realtime:MaximumReceiveMessageSize`'s default, from which the WebSocket bound follows."""


async def _accepted(scope: dict[str, Any], receive: Any, send: Any) -> bool:
    """Lifespan and plain HTTP answered; True once a WebSocket was accepted."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return False
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return False
    message = await receive()
    if message["type"] != "websocket.connect":
        return False
    await send({"type": "websocket.accept"})
    return True


class _DirectEcho:
    """A `FrameSink` that writes each message back with the direct frame writer, and
    queues it for ASGI `send` (pausing the socket) while that writer cannot write."""

    def __init__(self, write: Any) -> None:
        self.write = write
        self.waiting: asyncio.Queue[tuple[bytes, bool] | None] = asyncio.Queue()

    def message(self, data: bytes, binary: bool) -> bool:
        if self.waiting.empty() and self.write(data, binary):
            return True
        self.waiting.put_nowait((data, binary))
        return False

    def ended(self, code: int) -> None:
        self.waiting.put_nowait(None)


async def direct_echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """As `echo_app`, through the scope extensions the hub uses: messages arrive through
    `READ_FRAMES_EXTENSION` and leave through `WRITE_FRAME_EXTENSION`."""
    if not await _accepted(scope, receive, send):
        return
    extensions = scope["extensions"]
    echo = _DirectEcho(extensions[WRITE_FRAME_EXTENSION]["write"])
    resume = extensions[READ_FRAMES_EXTENSION]["attach"](echo)
    while (item := await echo.waiting.get()) is not None:
        data, binary = item
        await send(
            {"type": "websocket.send", **({"bytes": data} if binary else {"text": data.decode()})}
        )
        if echo.waiting.empty():
            resume()


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Raw ASGI: every text or binary message goes back as it came; lifespan is accepted."""
    if not await _accepted(scope, receive, send):
        return
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})


def config(app: Any = echo_app, ws: str = "hero") -> uvicorn.Config:
    """The uvicorn configuration of `hero serve` (see the module docstring). `ws`
    "hero-direct" echoes through the hub's direct read and write extensions; other names
    (uvicorn's: auto, wsproto, websockets) only compare implementations."""
    if ws == "hero-direct":
        app = direct_echo_app
    chosen = server_config(app, limits=HttpLimits(), maximum_receive_message_size=HUB_MESSAGE_LIMIT)
    if ws not in ("hero", "hero-direct"):
        chosen.ws = ws
    return chosen


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--ws",
        default="hero",
        help="hero (as hero serve), hero-direct (its direct extensions), or uvicorn's auto, ...",
    )
    args = parser.parse_args()
    sock = _bind(args.host, args.port)
    print(f"ws-echo listening on http://{args.host}:{sock.getsockname()[1]}", flush=True)
    uvicorn.Server(config(ws=args.ws)).run(sockets=[sock])


if __name__ == "__main__":
    main()
