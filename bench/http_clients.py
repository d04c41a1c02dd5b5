"""Minimal HTTP subscribers for bench/fanout_more.py: Server-Sent Events and long polling.

Like `benchlib.WsClient` they stay cheap: no parsing beyond what finding the body needs, and
once `counting` is set they only count `benchlib.MARKER` occurrences. Before that, body bytes
go to `seen` (setup waits on `changed` for the handshake reply and the JoinGroup completion).
"""

from __future__ import annotations

import asyncio
import time
from typing import cast

from benchlib import MARKER, Counter

TAIL = len(MARKER) - 1
"""Bytes kept from one read for the next: a marker split across two reads is still counted
once (the tail is too short to hold a whole marker by itself)."""


class _Counting(asyncio.Protocol):
    def __init__(self, host: str, path: str, counter: Counter) -> None:
        self._host = host
        self._path = path
        self._counter = counter
        self._transport: asyncio.Transport | None = None
        self.counting = False
        self.seen = bytearray()
        self.changed = asyncio.Event()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._request()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        self.changed.set()

    def _request(self) -> None:
        raise NotImplementedError

    def _body(self, data: bytes | bytearray) -> None:
        if not self.counting:
            self.seen += data
            self.changed.set()
            return
        found = data.count(MARKER)
        if found:
            counter = self._counter
            counter.messages += found
            counter.frames += 1
            if counter.messages >= counter.target and not counter.done.is_set():
                counter.last = time.perf_counter()
                counter.done.set()

    async def wait_for(self, needle: bytes, timeout: float) -> None:
        """Until `needle` appears in the body bytes seen so far (setup only)."""
        async with asyncio.timeout(timeout):
            while needle not in self.seen:
                if self.closed.done():
                    raise ConnectionError(f"closed while waiting for {needle!r}")
                self.changed.clear()
                await self.changed.wait()

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()


class SseClient(_Counting):
    """One `GET <path>` with `Accept: text/event-stream`; the body is read as it streams."""

    def __init__(self, host: str, path: str, counter: Counter) -> None:
        super().__init__(host, path, counter)
        self._head = bytearray()
        self._in_body = False
        self._tail = b""

    def _request(self) -> None:
        assert self._transport is not None
        self._transport.write(
            f"GET {self._path} HTTP/1.1\r\nHost: {self._host}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )

    def data_received(self, data: bytes) -> None:
        if not self._in_body:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            if b" 200 " not in bytes(self._head[: self._head.find(b"\r\n")]) + b" ":
                self.close()
                return
            self._in_body = True
            data = bytes(self._head[end + 4 :])
            self._head.clear()
        # Chunk-size lines and `data: ` prefixes never contain the marker.
        window = self._tail + data
        self._tail = window[-TAIL:]
        self._body(window if self.counting else data)


class LongPollClient(_Counting):
    """Back-to-back `GET <path>` polls on one keep-alive connection: every response body is
    handed on, then the next poll goes out at once. Stops on 204 (the connection is over)."""

    def __init__(self, host: str, path: str, counter: Counter) -> None:
        super().__init__(host, path, counter)
        self._buffer = bytearray()
        self.polls = 0

    def _request(self) -> None:
        assert self._transport is not None
        self.polls += 1
        self._transport.write(f"GET {self._path} HTTP/1.1\r\nHost: {self._host}\r\n\r\n".encode())

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            response = self._take_response()
            if response is None:
                return
            status, body = response
            if status == 204 or status >= 300:
                self.close()
                return
            if body:
                self._body(body)
            self._request()

    def _take_response(self) -> tuple[int, bytes] | None:
        """One complete response from the buffer (content-length or chunked), or None."""
        buffer = self._buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(buffer[:end]).lower()
        status = int(head.split(b" ", 2)[1])
        start = end + 4
        if b"transfer-encoding: chunked" in head:
            body = bytearray()
            pos = start
            while True:
                line_end = buffer.find(b"\r\n", pos)
                if line_end < 0:
                    return None
                size = int(bytes(buffer[pos:line_end]).split(b";")[0], 16)
                chunk = line_end + 2
                if len(buffer) < chunk + size + 2:
                    return None
                if size == 0:
                    del buffer[: chunk + 2]
                    return status, bytes(body)
                body += buffer[chunk : chunk + size]
                pos = chunk + size + 2
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip() == b"content-length":
                length = int(value.strip())
        if len(buffer) < start + length:
            return None
        body_bytes = bytes(buffer[start : start + length])
        del buffer[: start + length]
        return status, body_bytes


async def open_http(
    factory: type[_Counting], host: str, port: int, path: str, counter: Counter, *, timeout: float
) -> _Counting:
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        _, protocol = await loop.create_connection(
            lambda: factory(f"{host}:{port}", path, counter), host, port
        )
    return protocol


async def http_send(host: str, port: int, path: str, body: bytes, *, timeout: float) -> int:
    """A one-shot HTTP/1.1 POST of `body`; returns the status code."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(
                f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + body
            )
            raw = await reader.read()
        finally:
            writer.close()
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/") else 0
