"""`READ_FRAMES_EXTENSION` on the WebSocket protocol class `hero serve` runs: once a sink is
attached, messages reach it as bytes (text already checked as UTF-8) with their kind, however
the frames are cut across reads; after
`attach(None)` they come through ASGI `receive` again; the end of the socket reaches the
sink once, with the close code, or 1005/1006 when the connection was dropped."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from websockets.asyncio.client import connect
from websockets.frames import Frame, Opcode

from hero.platform.http_server import HttpLimits, server_config
from hero.realtime import READ_FRAMES_EXTENSION
from tests.support.servers import UNIT

TIMEOUT = 10 * UNIT


class Recorder:
    """A `hero.realtime.FrameSink` that records what it is given."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[tuple[bytes, bool]] = asyncio.Queue()
        self.code: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def message(self, data: bytes, binary: bool) -> bool:
        self.messages.put_nowait((data, binary))
        return True

    def ended(self, code: int) -> None:
        assert not self.code.done(), "ended twice"
        self.code.set_result(code)


class App:
    """Accepts one WebSocket at a time and hands its scope's attach to the test."""

    def __init__(self) -> None:
        self.sockets: asyncio.Queue[tuple[Any, Any, Any]] = asyncio.Queue()
        self.started = asyncio.Event()
        self.scopes: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
                self.started.set()
            await send({"type": "lifespan.shutdown.complete"})
            return
        assert scope["type"] == "websocket"
        self.scopes.append(scope)
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        attach = scope["extensions"][READ_FRAMES_EXTENSION]["attach"]
        await self.sockets.put((attach, receive, (send, done)))
        await done


@asynccontextmanager
async def serving(app: App) -> AsyncIterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    config = server_config(
        app, limits=HttpLimits(), maximum_receive_message_size=32_768, log_level="warning"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await asyncio.wait_for(app.started.wait(), TIMEOUT)
        yield f"ws://127.0.0.1:{sock.getsockname()[1]}/"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, TIMEOUT)


async def test_messages_reach_the_sink_then_asgi_receive_after_detaching() -> None:
    app = App()
    async with serving(app) as url, connect(url) as client:
        attach, receive, (send, done) = await asyncio.wait_for(app.sockets.get(), TIMEOUT)
        # The addresses come from the upgraded HTTP connection (handed over, not looked up).
        scope = app.scopes[0]
        assert scope["scheme"] == "ws"
        assert scope["server"] == tuple(client.remote_address)
        assert scope["client"] == tuple(client.local_address)
        sink = Recorder()
        attach(sink)
        await client.send("caf\u00e9")
        await client.send(b"\x00\xff")
        first = await asyncio.wait_for(sink.messages.get(), TIMEOUT)
        second = await asyncio.wait_for(sink.messages.get(), TIMEOUT)
        assert first == ("caf\u00e9".encode(), False)
        assert second == (b"\x00\xff", True)

        attach(None)
        await send({"type": "websocket.send", "text": "detached"})
        assert await asyncio.wait_for(client.recv(), TIMEOUT) == "detached"
        await client.send("through receive")
        event = await asyncio.wait_for(receive(), TIMEOUT)
        assert event == {"type": "websocket.receive", "text": "through receive"}

        attach(sink)
        await client.close(code=4001)
        assert await asyncio.wait_for(sink.code, TIMEOUT) == 4001
        assert sink.messages.empty()
        done.set_result(None)


async def test_a_message_queued_before_attaching_is_handed_over_in_order() -> None:
    app = App()
    async with serving(app) as url, connect(url) as client:
        await client.send("early")
        attach, _, (send, done) = await asyncio.wait_for(app.sockets.get(), TIMEOUT)
        # Sent before the sink exists: it waits in the ASGI queue (the socket paused).
        await send({"type": "websocket.send", "text": "accepted"})
        await client.send("late")
        assert await asyncio.wait_for(client.recv(), TIMEOUT) == "accepted"
        sink = Recorder()
        attach(sink)
        assert await asyncio.wait_for(sink.messages.get(), TIMEOUT) == (b"early", False)
        assert await asyncio.wait_for(sink.messages.get(), TIMEOUT) == (b"late", False)
        done.set_result(None)


async def test_a_dropped_connection_ends_the_sink_without_a_close_code() -> None:
    app = App()
    async with serving(app) as url:
        client = await connect(url)
        attach, _, (_, done) = await asyncio.wait_for(app.sockets.get(), TIMEOUT)
        sink = Recorder()
        attach(sink)
        client.transport.abort()  # no close frame
        assert await asyncio.wait_for(sink.code, TIMEOUT) in (1005, 1006)
        done.set_result(None)


def masked(opcode: Opcode, data: bytes, fin: bool = True) -> bytes:
    return Frame(opcode, data, fin=fin).serialize(mask=True, extensions=[])


async def test_frames_cut_anywhere_and_mixed_with_control_frames_arrive_in_order() -> None:
    """hero reads whole frames itself and hands anything else to `websockets`; the frame
    boundaries hold however the bytes are cut across reads."""
    stream = b"".join(
        [
            masked(Opcode.TEXT, b"a" * 5),
            masked(Opcode.BINARY, b"\x01" * 300),  # 16-bit length
            masked(Opcode.PING, b"p"),
            masked(Opcode.TEXT, b"frag-", fin=False),
            masked(Opcode.PING, b"q"),  # a control frame between fragments
            masked(Opcode.CONT, b"ment"),
            masked(Opcode.TEXT, b"\xc3\xa9" * 40_000),  # 64-bit length
            masked(Opcode.TEXT, b"z"),
        ]
    )
    expected = [
        (b"a" * 5, False),
        (b"\x01" * 300, True),
        (b"frag-ment", False),
        (b"\xc3\xa9" * 40_000, False),
        (b"z", False),
    ]
    app = App()
    async with serving(app) as url:
        for cut in (1, 2, 3, 7, 13, 301, 4096, len(stream)):
            async with connect(url) as client:
                attach, _, (_, done) = await asyncio.wait_for(app.sockets.get(), TIMEOUT)
                sink = Recorder()
                attach(sink)
                for start in range(0, len(stream), cut):
                    client.transport.write(stream[start : start + cut])
                    await asyncio.sleep(0)  # let the server read what is there
                got = [await asyncio.wait_for(sink.messages.get(), TIMEOUT) for _ in expected]
                assert got == expected, f"cut every {cut} bytes"
                done.set_result(None)
