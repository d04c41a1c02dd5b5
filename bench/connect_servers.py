"""The comparison servers of bench/connections.py, one per process.

    python bench/connect_servers.py asgi --signing-key K      # bare ASGI app under uvicorn
    python bench/connect_servers.py raw --signing-key K       # one asyncio protocol, no framework
    python bench/connect_servers.py socketio --signing-key K  # python-socketio under uvicorn

Each binds 127.0.0.1 on a free port, prints `... listening on http://127.0.0.1:<port>` and
then `... startup complete` (what bench/herobench.py's `server_process` waits for), and runs
on the loop uvicorn's `loop="auto"` picks (uvloop when installed), as `hero serve` does.

Every one checks the same bearer JWT (PyJWT, HS256, the `hero.clients` audience) and keeps
the tokens that passed until their expiry, as hero does, so a reconnecting client's token is
not checked again:

- asgi: `POST <any path>` answers a negotiate body with fresh ids; a WebSocket checks
  `access_token`, accepts and answers the JSON handshake with `{}`. uvicorn's own protocol
  classes (httptools, websockets-sansio) with hero's settings where they matter (no
  compression, no pings of uvicorn's, no logging): the least an ASGI app can do.
- raw: the same exchange in one `asyncio.Protocol` that reads the request head, answers
  negotiate, writes the 101 itself and reads the handshake frame: no HTTP parser, no ASGI,
  no WebSocket library. What this machine's Python can do at best.
- socketio: Socket.IO over a WebSocket from the start (`/socket.io/?EIO=4&transport=
  websocket`, as its client with `transports: ["websocket"]`): the `connect` handler checks
  `auth.token` and enters the rooms `user:<sub>` and `tenant:<tenant>`, as AppHub puts a
  connection in its groups.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import secrets
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import jwt

from benchlib import raise_fd_limit
from fanout_servers import banner, bind, loop_factory
from hero.auth.tokens import RECENT_TOKENS

AUDIENCE = "hero.clients"
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3


def token_checker(signing_key: str) -> Callable[[str | None], dict[str, Any] | None]:
    """A token's claims when it is valid; tokens that passed are kept until they expire,
    as many and forgotten in the same order as hero's JwtValidator (`RECENT_TOKENS`, the
    oldest first)."""
    recent: dict[str, tuple[float, dict[str, Any]]] = {}

    def check(token: str | None) -> dict[str, Any] | None:
        if not token:
            return None
        known = recent.get(token)
        if known is not None:
            if known[0] > time.time():
                return known[1]
            del recent[token]
        try:
            claims = jwt.decode(token, signing_key, algorithms=["HS256"], audience=AUDIENCE)
        except jwt.PyJWTError:
            return None
        if len(recent) >= RECENT_TOKENS:
            del recent[next(iter(recent))]  # the oldest entry
        recent[token] = (float(claims["exp"]), claims)
        return claims

    return check


def negotiate_body() -> bytes:
    return json.dumps(
        {
            "negotiateVersion": 1,
            "connectionId": secrets.token_urlsafe(16),
            "connectionToken": secrets.token_urlsafe(16),
            "availableTransports": [
                {"transport": "WebSockets", "transferFormats": ["Text", "Binary"]}
            ],
        }
    ).encode()


def serve_asgi(signing_key: str) -> None:
    check = token_checker(signing_key)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()  # lifespan.startup
            await send({"type": "lifespan.startup.complete"})
            print("connect-asgi: startup complete", flush=True)
            await receive()  # lifespan.shutdown
            await send({"type": "lifespan.shutdown.complete"})
        elif scope["type"] == "http":
            while (await receive()).get("more_body"):
                pass
            headers = dict(scope["headers"])
            bearer = headers.get(b"authorization", b"").decode().removeprefix("Bearer ")
            if check(bearer) is None:
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
            body = negotiate_body()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
        elif scope["type"] == "websocket":
            query = parse_qs(scope["query_string"].decode())
            await receive()  # websocket.connect
            if check(query.get("access_token", [None])[0]) is None:
                await send({"type": "websocket.close", "code": 1008})
                return
            await send({"type": "websocket.accept"})
            message = await receive()
            if message["type"] != "websocket.receive":
                return
            await send({"type": "websocket.send", "text": "{}\x1e"})
            while (await receive())["type"] != "websocket.disconnect":
                pass

    import uvicorn

    sock = bind()
    banner("connect-asgi", sock)
    config = uvicorn.Config(
        app,
        http="httptools",
        ws="websockets-sansio",
        log_level="warning",
        ws_per_message_deflate=False,
        ws_ping_interval=None,
        lifespan="on",
    )
    uvicorn.Server(config).run(sockets=[sock])


class RawConnect(asyncio.Protocol):
    """Negotiate and the WebSocket of one client, by hand. Requests are parsed only as far
    as this exchange needs (request line, headers, a body of `Content-Length`); kept-alive
    negotiate requests are answered one after the other, `Connection: close` is honoured."""

    check: Callable[[str | None], dict[str, Any] | None]

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.websocket = False
        self.handshaken = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.websocket:
            self._frames()
        else:
            self._requests()

    def _requests(self) -> None:
        assert self.transport is not None
        while not self.websocket:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = self.buffer[:end].split(b"\r\n")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get(b"content-length", b"0"))
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            method, target, _ = lines[0].split(b" ", 2)
            if method == b"POST":
                bearer = headers.get(b"authorization", b"").decode().removeprefix("Bearer ")
                if self.check(bearer) is None:
                    self.transport.write(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n")
                else:
                    body = negotiate_body()
                    self.transport.write(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                        + str(len(body)).encode()
                        + b"\r\n\r\n"
                        + body
                    )
                if headers.get(b"connection", b"").lower() == b"close":
                    self.transport.close()
                    return
            else:
                query = parse_qs(target.partition(b"?")[2].decode())
                key = headers.get(b"sec-websocket-key")
                if key is None or self.check(query.get("access_token", [None])[0]) is None:
                    self.transport.write(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n")
                    self.transport.close()
                    return
                accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
                self.transport.write(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
                )
                self.websocket = True
                self._frames()

    def _frames(self) -> None:
        """Client frames: masked, and here only the handshake and then the close, so the
        first data frame is taken for the handshake unread (as the Upgrade and version
        headers are not checked above: this server meets one known client)."""
        assert self.transport is not None
        while len(self.buffer) >= 6:
            opcode = self.buffer[0] & 0x0F
            length = self.buffer[1] & 0x7F
            start = 6
            if length == 126:
                length = int.from_bytes(self.buffer[2:4], "big")
                start = 8
            elif length == 127:
                length = int.from_bytes(self.buffer[2:10], "big")
                start = 14
            if len(self.buffer) < start + length:
                return
            self.buffer = self.buffer[start + length :]
            if opcode == 0x8:  # close: answer it and end
                self.transport.write(b"\x88\x00")
                self.transport.close()
                return
            if not self.handshaken:
                self.handshaken = True
                self.transport.write(b"\x81\x03{}\x1e")


def serve_raw(signing_key: str) -> None:
    RawConnect.check = staticmethod(token_checker(signing_key))  # type: ignore[method-assign]

    async def main() -> None:
        sock = bind()
        banner("connect-raw", sock)
        server = await asyncio.get_running_loop().create_server(RawConnect, sock=sock)
        print("connect-raw: startup complete", flush=True)
        async with server:
            await server.serve_forever()

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main())


def serve_socketio(signing_key: str) -> None:
    import socketio
    import uvicorn

    check = token_checker(signing_key)
    sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins=[], logger=False)

    @sio.event  # type: ignore[untyped-decorator]
    async def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        claims = check(auth.get("token") if isinstance(auth, dict) else None)
        if claims is None:
            raise socketio.exceptions.ConnectionRefusedError("unauthorized")
        await sio.enter_room(sid, "user:" + claims["sub"])
        await sio.enter_room(sid, "tenant:" + str(claims.get("tenant", "")))

    def started() -> None:
        print("connect-socketio: startup complete", flush=True)

    sock = bind()
    banner("connect-socketio", sock)
    app = socketio.ASGIApp(sio, on_startup=started)
    config = uvicorn.Config(
        app, log_level="warning", ws_per_message_deflate=False, ws_ping_interval=None
    )
    uvicorn.Server(config).run(sockets=[sock])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server", choices=("asgi", "raw", "socketio"))
    parser.add_argument("--signing-key", required=True, help="the JWT key (HS256)")
    args = parser.parse_args()
    raise_fd_limit(65536)
    {"asgi": serve_asgi, "raw": serve_raw, "socketio": serve_socketio}[args.server](
        args.signing_key
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
