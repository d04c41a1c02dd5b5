"""Pieces of the chaos tests (test_chaos.py): a steady stream of chat messages posted over
REST, the REST history, the loss / duplicate / order tally, clean-log checks, and the record
of each run's figures.

Figures are printed (`pytest -s`) and, when `HERO_CHAOS_RESULTS` names a file, appended to it
as one JSON object per line (`bench/chaos.py` collects them into bench/results/).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.integration.js.agent import NodeAgent
from tests.integration.test_chat_cluster import CHAT, CREATED, Person
from tests.support.servers import UNIT, RunningServer
from tests.support.valkey import free_port, start_valkey

RESULTS_ENV = "HERO_CHAOS_RESULTS"


# ------------------------------------------------------------------------------ the writers


@dataclass
class Sent:
    """A message the server acknowledged: its id, status (201, or 200 for a replay of an
    Idempotency-Key) and when the answer came (time.monotonic)."""

    id: str
    status: int
    at: float


@dataclass
class Writers:
    """`count` concurrent clients posting chat messages to `channel` back to back, each
    request with its own Idempotency-Key.

    An answer other than 201/200 is kept in `refused`. Without `resume` the writer that got it
    stops; with `resume` it waits for that event (the outage is over) and sends the same
    message again with the same key, as a client honouring `Retry-After` would.
    """

    http: httpx.AsyncClient
    server: RunningServer
    author: Person
    channel: str
    count: int = 2
    resume: asyncio.Event | None = None
    sent: list[Sent] = field(default_factory=list)
    refused: list[httpx.Response] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._write(n)) for n in range(self.count)]

    async def stop(self) -> None:
        """Let every writer finish its request in flight, then end them."""
        self._stopping.set()
        try:
            async with asyncio.timeout(30 * UNIT):
                await asyncio.gather(*self._tasks)
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def wait(self, predicate: Callable[[Writers], bool], what: str) -> None:
        """Until `predicate(self)` holds (bounded; a writer's failure is raised at once)."""
        try:
            async with asyncio.timeout(60 * UNIT):
                while not predicate(self):
                    for task in self._tasks:
                        if task.done():
                            task.result()  # a failed writer surfaces here
                    if all(task.done() for task in self._tasks):
                        raise AssertionError(f"every writer stopped before {what}")
                    changed = self._changed
                    await changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"writers: no {what} within {60 * UNIT:.0f} s "
                f"(sent {len(self.sent)}, refused {len(self.refused)})"
            ) from None

    async def acknowledged(self, total: int) -> None:
        """Until `total` messages were acknowledged in all."""
        await self.wait(lambda w: len(w.sent) >= total, f"{total} acknowledged messages")

    def _progress(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _write(self, number: int) -> None:
        url = f"{self.server.base_url}{CHAT}/channels/{self.channel}/messages"
        for n in itertools.count():
            if self._stopping.is_set():
                return
            body = {"body": f"writer {number} message {n}"}
            headers = {**self.author.headers(), "Idempotency-Key": uuid.uuid4().hex}
            while True:
                response = await self.http.post(url, json=body, headers=headers)
                if response.status_code in (200, 201):
                    self.sent.append(
                        Sent(str(response.json()["id"]), response.status_code, time.monotonic())
                    )
                    self._progress()
                    break
                self.refused.append(response)
                self._progress()
                if self.resume is None:
                    return
                async with asyncio.timeout(60 * UNIT):
                    await self.resume.wait()


# ------------------------------------------------------------------------------ history


async def history(
    http: httpx.AsyncClient,
    server: RunningServer,
    reader: Person,
    channel: str,
    after: str | None = None,
) -> list[str]:
    """Ids of the channel's top-level messages after `after` (all without it), oldest first,
    read over the REST API page by page. Without `after` the API answers the newest page, so
    the walk starts after the nil id, before every UUIDv7."""
    ids: list[str] = []
    if after is None:
        after = "00000000-0000-0000-0000-000000000000"
    while True:
        params: dict[str, Any] = {"pageSize": 200}
        if after is not None:
            params["after"] = after
        response = await http.get(
            f"{server.base_url}{CHAT}/channels/{channel}/messages",
            params=params,
            headers=reader.headers(),
        )
        assert response.status_code == 200, response.text
        page = [str(m["id"]) for m in response.json()]
        if not page:
            return ids
        ids += page
        after = page[-1]


def live_ids(agent: NodeAgent, name: str) -> list[str]:
    """Ids of every ChatMessageCreated connection `name` received, in arrival order."""
    return [str(m["id"]) for m in agent.args_of(name, CREATED)]


async def until_received(agent: NodeAgent, name: str, wanted: Iterable[str]) -> None:
    """Until connection `name` has received ChatMessageCreated for every id in `wanted`."""
    missing = set(wanted)
    await agent.wait_for(
        name,
        lambda _: missing <= set(live_ids(agent, name)),
        timeout=30 * UNIT,
        what=f"ChatMessageCreated for all {len(missing)} committed messages",
    )


def first_arrival(agent: NodeAgent, name: str, ids: Iterable[str]) -> float:
    """When (time.monotonic) connection `name` first received any of `ids`."""
    wanted = set(ids)
    return min(e.at for e in agent.messages(name, CREATED) if str(e.arg["id"]) in wanted)


def last_arrival(agent: NodeAgent, name: str, ids: Iterable[str]) -> float:
    """When connection `name` had received every one of `ids` (each first time)."""
    first: dict[str, float] = {}
    for event in agent.messages(name, CREATED):
        first.setdefault(str(event.arg["id"]), event.at)
    return max(first[i] for i in ids)


# ------------------------------------------------------------------------------ the tally


@dataclass(frozen=True)
class Tally:
    """What one client saw against what the database committed (by message id)."""

    lost: int  # committed, never seen
    duplicated: int  # seen again after the first time (a client drops these by id)
    out_of_order: int  # first seen after a message committed later than it
    unexpected: int  # seen, but not among the committed messages

    @classmethod
    def of(cls, committed: Sequence[str], seen: Sequence[str]) -> Tally:
        position = {message: n for n, message in enumerate(committed)}
        counts = Counter(seen)
        out_of_order = 0
        highest = -1
        for message in dict.fromkeys(seen):  # first sightings, in order
            where = position.get(message)
            if where is None:
                continue
            if where < highest:
                out_of_order += 1
            highest = max(highest, where)
        return cls(
            lost=len(position.keys() - counts.keys()),
            duplicated=sum(c - 1 for c in counts.values()),
            out_of_order=out_of_order,
            unexpected=len(counts.keys() - position.keys()),
        )

    @classmethod
    def total(cls, tallies: Iterable[Tally]) -> Tally:
        items = list(tallies)
        return cls(
            lost=sum(t.lost for t in items),
            duplicated=sum(t.duplicated for t in items),
            out_of_order=sum(t.out_of_order for t in items),
            unexpected=sum(t.unexpected for t in items),
        )


# ------------------------------------------------------------------------------ logs, record


def faults_in_log(server: RunningServer) -> list[str]:
    """The server's ERROR / CRITICAL lines and tracebacks (nothing a client does, and no
    outage of a dependency, may produce one)."""
    return [
        line
        for line in server.log().splitlines()
        if line.startswith(("ERROR", "CRITICAL")) or line.startswith("Traceback")
    ]


def assert_no_faults(server: RunningServer) -> None:
    """Fail with the server's log when it holds an ERROR / CRITICAL line or a traceback."""
    assert faults_in_log(server) == [], f"{server.base_url} logged a fault:\n{server.log()}"


def record(case: str, **figures: Any) -> None:
    """Print one run's figures and append them to $HERO_CHAOS_RESULTS when it is set."""
    print(f"chaos {case}: " + " ".join(f"{k}={v}" for k, v in figures.items()))
    path = os.environ.get(RESULTS_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"case": case, **figures}) + "\n")


def seconds(value: float) -> float:
    return round(value, 3)


class PrivateValkey:
    """A valkey-server of the test's own on a fixed port, which it may stop and start again
    (the port stays the same, so the instances' URL stays valid)."""

    def __init__(self) -> None:
        self.port = free_port()
        self._server: Any = start_valkey(self.port)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self._server.stop()
        self._server = None

    def start(self) -> None:
        self._server = start_valkey(self.port)

    def close(self) -> None:
        if self._server is not None:
            self.stop()


@contextlib.contextmanager
def private_valkey() -> Iterator[PrivateValkey]:
    server = PrivateValkey()
    try:
        yield server
    finally:
        server.close()
