"""What the single-purpose bench scripts (soak, stalled, connections, stateful_drops) share:
a hero server process on loopback, a SignalR JSON client over `benchlib.WsClient`, and the
report each writes under bench/results/."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from benchlib import Counter, WsClient, drain, git_state, machine_info, package_versions, ws_connect

ROOT = Path(__file__).resolve().parents[1]
RS = b"\x1e"
STEP_TIMEOUT = 30.0
_LISTENING = re.compile(r"(?:listening|serving) on http://127\.0\.0\.1:(\d+)")


@contextlib.contextmanager
def hero_server(
    command: str, env: Mapping[str, str] | None = None, cwd: Path = ROOT
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """`python -m hero <command>` on a free loopback port, until its startup completed;
    yields (process, port) and stops it afterwards. Its output is drained in the background
    (a full pipe would stall its logging, and with it the server)."""
    argv = [sys.executable, "-m", "hero", command, "--host", "127.0.0.1", "--port", "0"]
    with server_process(argv, env, cwd) as started:
        yield started


@contextlib.contextmanager
def server_process(
    argv: list[str], env: Mapping[str, str] | None = None, cwd: Path = ROOT
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """Any bench server process that prints `... listening on http://127.0.0.1:<port>` and
    then a line with `startup complete`: started, drained and stopped as `hero_server`."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env, cwd=cwd
    )
    try:
        port = _wait_started(process)
        drain(process)
        yield process, port
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_started(process: subprocess.Popen[str], budget: float = 60.0) -> int:
    """The port, once the server printed its banner and `startup complete`. A server that
    goes quiet instead is killed after `budget` seconds (a blocked `readline` returns then)."""
    assert process.stdout is not None
    watchdog = threading.Timer(budget, process.kill)
    watchdog.start()
    port = None
    try:
        for line in iter(process.stdout.readline, ""):
            found = _LISTENING.search(line)
            if found:
                port = int(found.group(1))
            if port is not None and "startup complete" in line:
                return port
    finally:
        watchdog.cancel()
    process.kill()
    raise RuntimeError(f"{process.args} did not start within {budget:.0f} s")


def _post_request(port: int, path: str, headers: str, *, close: bool) -> bytes:
    """An HTTP/1.1 POST with an empty body."""
    connection = "Connection: close\r\n" if close else ""
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}"
        f"Content-Length: 0\r\n{connection}\r\n"
    ).encode()


def _ok(path: str, head: bytes, body: bytes) -> bytes:
    """`body`, if the status line in `head` says 200."""
    status = head.split(b"\r\n", 1)[0]
    if b" 200 " not in status:
        raise ConnectionError(f"POST {path}: {status.decode('latin-1')}")
    return body


async def _post(port: int, path: str, headers: str = "") -> bytes:
    """A one-shot HTTP/1.1 POST with an empty body; the response body (200 only)."""
    async with asyncio.timeout(STEP_TIMEOUT):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(_post_request(port, path, headers, close=True))
            raw = await reader.read()
        finally:
            writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return _ok(path, head, body)


class KeepAlivePosts:
    """Empty-bodied POSTs over a few kept-alive HTTP/1.1 connections, as a browser (or the
    Node client's fetch) sends negotiate: each request takes an idle connection, or opens
    one; a connection the server closed meanwhile is replaced once."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(self, path: str, headers: str = "") -> bytes:
        for attempt in (1, 2):
            reused = bool(self._idle)
            if reused:
                reader, writer = self._idle.pop()
            else:
                reader, writer = await asyncio.open_connection("127.0.0.1", self._port)
            try:
                async with asyncio.timeout(STEP_TIMEOUT):
                    writer.write(_post_request(self._port, path, headers, close=False))
                    head = await reader.readuntil(b"\r\n\r\n")
                    body = await reader.readexactly(_content_length(head))
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()
                if reused and attempt == 1:
                    continue  # the server closed the idle connection: one fresh try
                raise
            self._idle.append((reader, writer))
            return _ok(path, head, body)
        raise AssertionError("unreachable")

    def close(self) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()


async def signalr_connect(
    port: int,
    hub: str,
    *groups: str,
    token: str | None = None,
    counter: Counter | None = None,
    http: KeepAlivePosts | None = None,
) -> WsClient:
    """Negotiate, WebSocket, JSON handshake and a `JoinGroup` per group, as the official
    client does; `token` travels as a bearer header on negotiate and as `access_token`.
    Negotiate opens a connection of its own, unless `http` lends a kept-alive one."""
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    negotiate = f"{hub}/negotiate?negotiateVersion=1"
    body = await (http.post(negotiate, auth) if http else _post(port, negotiate, auth))
    path = f"{hub}?id={json.loads(body)['connectionToken']}"
    if token:
        path += f"&access_token={token}"
    client = await ws_connect("127.0.0.1", port, path, counter or Counter(), timeout=STEP_TIMEOUT)
    client.send_text(b'{"protocol":"json","version":1}' + RS)
    reply = await client.receive(STEP_TIMEOUT)
    if not reply.startswith(b"{}" + RS):
        raise ConnectionError(f"handshake failed: {reply!r}")
    for group in groups:
        client.send_text(
            b'{"type":1,"invocationId":"j","target":"JoinGroup","arguments":["'
            + group.encode()
            + b'"]}'
            + RS
        )
        async with asyncio.timeout(STEP_TIMEOUT):
            while b'"type":3' not in await client.inbox.get():
                pass
    return client


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def write_report(
    name: str, output: Path | None, body: Mapping[str, Any], packages: tuple[str, ...] = ()
) -> Path:
    """bench/results/<name>-<UTC date>.json (or `output`): the command, date, machine,
    versions and commit around `body`."""
    report = {
        "benchmark": name,
        "command": f"python bench/{Path(sys.argv[0]).name} " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine_info(),
        "versions": package_versions(("uvicorn", "uvloop", "websockets", *packages)),
        "code": git_state(ROOT),
        **body,
    }
    path = output or ROOT / "bench" / "results" / f"{name}-{time.strftime('%Y-%m-%d')}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path
