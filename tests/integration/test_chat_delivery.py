"""The outbox's promise end to end, on whole `hero serve` instances over real HTTP, with the
official JS client as the member:

- an instance killed with SIGKILL in the middle of a burst of sends: every message the
  database holds as committed reaches a member connected to the surviving instance, with no
  restart of the dead one (the test prints committed / acknowledged / delivered / twice);
- Valkey stopped during sends: the requests still commit, and the events reach members on
  both instances after Valkey returns, in order and without duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
from collections import Counter
from contextlib import ExitStack
from typing import Any

import httpx

from tests.integration.js.agent import NodeAgent
from tests.integration.platform_app import SIGNING_KEY, clean_environ, hero_serve
from tests.integration.test_chat_cluster import (
    CHAT,
    CREATED,
    HUB,
    TARGETS,
    Person,
    cluster,
    create_channel,
    http,
    people,
    post,
)
from tests.support.servers import UNIT, RunningServer
from tests.support.valkey import free_port, start_valkey

pytest_plugins = ("tests.support.postgres", "tests.support.valkey_fixtures")
__all__ = ["cluster", "http"]  # fixtures re-used from the cluster tests


def _env(redis: str, postgres_url: str) -> dict[str, str]:
    return clean_environ(
        {
            "JwtOptions__SigningKey": SIGNING_KEY,
            "CachingOptions__Redis": redis,
            "DatabaseOptions__ConnectionString": postgres_url,
        }
    )


async def connected(agent: NodeAgent, name: str, url: str, person: Person, channel: str) -> None:
    """Connect, then wait until the hub's on-connected work (joining the channel groups) is
    done: start() resolves at the handshake, before it; an invocation is served after it."""
    await agent.connect(name, url + HUB, tokens=[person.token()], targets=TARGETS)
    await agent.invoke(name, "JoinChannel", channel)


async def committed_messages(
    http: httpx.AsyncClient, server: RunningServer, reader: Person, channel: str
) -> list[str]:
    """Ids of every top-level message of `channel`, oldest first, read over the REST API."""
    ids: list[str] = []
    after: str | None = None
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


async def received_ids(agent: NodeAgent, name: str, wanted: set[str], timeout: float) -> list[str]:
    """Wait until connection `name` has received ChatMessageCreated for every id in `wanted`;
    returns the ids of all it received, in arrival order (duplicates included)."""
    await agent.wait_for(
        name,
        lambda _: wanted <= {m["id"] for m in agent.args_of(name, CREATED)},
        timeout=timeout,
        what=f"ChatMessageCreated for all {len(wanted)} committed messages",
    )
    return [str(m["id"]) for m in agent.args_of(name, CREATED)]


async def test_a_surviving_instance_delivers_what_a_killed_instance_committed(
    cluster: tuple[RunningServer, RunningServer], http: httpx.AsyncClient, agent: NodeAgent
) -> None:
    first, second = cluster
    owner, member = people(2)
    channel = await create_channel(http, second, owner, [member])
    await connected(agent, "member", second.base_url, member, channel)
    warm = await post(http, second, owner, channel, "warm-up")
    await agent.next_message("member", CREATED, where=lambda m: m["id"] == warm["id"])

    acknowledged: list[str] = []
    enough = asyncio.Event()

    async def writer(number: int) -> None:
        for n in itertools.count():
            try:
                response = await http.post(
                    f"{first.base_url}{CHAT}/channels/{channel}/messages",
                    json={"body": f"burst {number}.{n}"},
                    headers=owner.headers(),
                )
            except httpx.HTTPError:
                return  # the instance is gone
            assert response.status_code == 201, response.text
            acknowledged.append(str(response.json()["id"]))
            if len(acknowledged) >= 40:
                enough.set()

    writers = [asyncio.create_task(writer(n)) for n in range(6)]
    try:
        async with asyncio.timeout(60 * UNIT):
            await enough.wait()
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait()
        async with asyncio.timeout(30 * UNIT):
            await asyncio.gather(*writers)
    finally:
        for task in writers:
            task.cancel()
        await asyncio.gather(*writers, return_exceptions=True)

    committed = set(await committed_messages(http, second, owner, channel)) - {str(warm["id"])}
    # The surviving instance's dispatcher takes over the dead one's unsent events once they
    # are older than its lease (2 s) and sweeps every second.
    arrived = await received_ids(agent, "member", committed, timeout=30 * UNIT)
    arrived = [i for i in arrived if i != str(warm["id"])]
    counts = Counter(arrived)
    twice = sum(1 for c in counts.values() if c > 1)
    print(
        f"committed={len(committed)} acknowledged={len(acknowledged)} "
        f"delivered={len(counts)} delivered_twice={twice}"
    )
    assert set(acknowledged) <= committed  # a 201 means committed
    assert set(counts) == committed  # every committed message arrived, nothing else did
    assert twice <= 6  # only events in flight at the kill (one per writer) can come twice


async def test_events_sent_while_valkey_is_down_arrive_after_it_returns(
    postgres_url: str, http: httpx.AsyncClient, agent: NodeAgent
) -> None:
    port = free_port()
    server = start_valkey(port)
    redis = f"redis://127.0.0.1:{port}/0"
    try:
        with ExitStack() as stack:
            first = stack.enter_context(hero_serve(_env(redis, postgres_url)))
            second = stack.enter_context(hero_serve(_env(redis, postgres_url)))
            owner, near, far = people(3)
            channel = await create_channel(http, first, owner, [near, far])
            # `near` is on the instance that commits, `far` on the other one.
            await connected(agent, "near", first.base_url, near, channel)
            await connected(agent, "far", second.base_url, far, channel)
            sent = [await post(http, first, owner, channel, f"before {n}") for n in range(3)]
            for name in ("near", "far"):
                await received_ids(agent, name, {str(m["id"]) for m in sent}, 10 * UNIT)

            server.stop()
            for n in range(5):  # the requests commit although nothing can be broadcast
                sent.append(await post(http, first, owner, channel, f"during {n}"))
            server = start_valkey(port)
            for n in range(2):
                sent.append(await post(http, first, owner, channel, f"after {n}"))

            wanted = [str(m["id"]) for m in sent]
            for name in ("near", "far"):
                arrived = await received_ids(agent, name, set(wanted), 30 * UNIT)
                assert arrived == wanted, name  # all of them, once each, in commit order
    finally:
        with contextlib.suppress(Exception):
            server.stop()
