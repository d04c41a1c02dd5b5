"""Chaos: what hero promises while a dependency or an instance fails under a steady load.

Two `hero serve` instances share one PostgreSQL and one valkey-server of the test's own; chat
messages are posted over REST back to back by concurrent writers while members, connected
with the official JS client, receive them. Then, mid-stream:

1. Valkey is stopped and started again on the same port: every committed message reaches
   every member, once, in order (live or through the outbox's redelivery).
2. An instance is killed with SIGKILL while members hold connections to it: they reconnect
   (automatic reconnect, their URL list fails over to the other instance), read the REST
   history after the last message they saw, and have every committed message, in id order.
3. PostgreSQL is stopped for a few seconds: REST calls answer 503 problem+json with
   Retry-After (no 500, no traceback in the server logs), hub connections stay up, and after
   it returns requests succeed, nothing committed is lost and the outbox catches up.

Each case counts lost, duplicated and out-of-order messages per member (asserted) and
measures recovery times (printed with `-s` and recorded by `bench/chaos.py`, never asserted).
Every wait is on an event or a response, with a timeout.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import ExitStack

import httpx
import pytest

from tests.integration.chaos_support import (
    Tally,
    Writers,
    assert_no_faults,
    first_arrival,
    history,
    last_arrival,
    live_ids,
    private_valkey,
    record,
    seconds,
    until_received,
)
from tests.integration.js.agent import NodeAgent
from tests.integration.platform_app import SIGNING_KEY, clean_environ, hero_serve
from tests.integration.test_chat_cluster import (
    CHAT,
    CREATED,
    HUB,
    TARGETS,
    Person,
    create_channel,
    people,
    post,
)
from tests.support.postgres_server import (
    create_database,
    private_postgres,
    start_postgres,
    stop_postgres,
)
from tests.support.servers import UNIT, RunningServer

pytest_plugins = ("tests.support.postgres",)
pytestmark = pytest.mark.valkey

RECONNECT_DELAYS_MS = [0, 100, 250, 500, 1000, 2000, 2000, 2000]
"""withAutomaticReconnect delays: a first retry at once, then a few more within ~8 s."""
OUTAGE_ROUNDS = 6
"""Rounds of REST probes, half a second apart, while PostgreSQL is down (~3 s)."""


def serve_env(redis: str, database: str, **settings: str) -> dict[str, str]:
    return clean_environ(
        {
            "JwtOptions__SigningKey": SIGNING_KEY,
            "CachingOptions__Redis": redis,
            "DatabaseOptions__ConnectionString": database,
            # the writers post back to back from one user: past the REST rate limit's 300
            # per 10 s, which is not what these cases are about
            "RateLimiting__Enabled": "false",
            **settings,
        }
    )


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10 * UNIT, trust_env=False) as client:
        yield client


async def join(
    agent: NodeAgent,
    name: str,
    server: RunningServer,
    person: Person,
    channel: str,
    *,
    transport: str,
    **options: object,
) -> None:
    """Connect `name` to `server` and wait until its channel groups are joined (an invocation
    is served only after the hub's on-connected work)."""
    await agent.connect(
        name,
        server.base_url + HUB,
        tokens=[person.token()],
        transport=transport,
        targets=TARGETS,
        **options,  # type: ignore[arg-type]
    )
    await agent.invoke(name, "JoinChannel", channel)


def lifecycle_events(agent: NodeAgent, name: str) -> list[str]:
    return [e.kind for e in agent.events.get(name, []) if e.kind != "message"]


async def stop_all(agent: NodeAgent, names: list[str]) -> None:
    for name in names:
        await agent.stop(name)


# ------------------------------------------------------------------------------ 1. Valkey


async def test_valkey_restarted_under_load_every_committed_message_arrives_once(
    postgres_url: str, http: httpx.AsyncClient, agent: NodeAgent
) -> None:
    with private_valkey() as valkey, ExitStack() as stack:
        # A presence heartbeat every 0.5 s, so that the outage meets several of them.
        env = serve_env(valkey.url, postgres_url, Realtime__PresenceTtlSeconds="1.5")
        first = stack.enter_context(hero_serve(env))
        second = stack.enter_context(hero_serve(env))
        owner, *members = people(5)
        channel = await create_channel(http, first, owner, members)
        placement = [
            ("near-ws", first, "WebSockets"),
            ("near-sse", first, "ServerSentEvents"),
            ("far-ws", second, "WebSockets"),
            ("far-lp", second, "LongPolling"),
        ]
        names = [name for name, _, _ in placement]
        for (name, server, transport), member in zip(placement, members, strict=True):
            await join(agent, name, server, member, channel, transport=transport)

        writers = Writers(http, first, owner, channel)
        writers.start()
        await writers.acknowledged(20)
        await asyncio.to_thread(valkey.stop)  # the writers go on meanwhile
        stopped_at = time.monotonic()
        before_outage = len(writers.sent)
        await writers.acknowledged(before_outage + 40)  # they commit without a backplane
        await asyncio.to_thread(valkey.start)
        restarted_at = time.monotonic()
        during_outage = [s.id for s in writers.sent[before_outage:]]
        after_restart = len(writers.sent)
        await writers.acknowledged(after_restart + 40)
        await writers.stop()
        assert writers.refused == []  # every request committed, Valkey or not

        committed = await history(http, first, owner, channel)
        assert {s.id for s in writers.sent} == set(committed)
        fresh = [s.id for s in writers.sent if s.at > restarted_at]
        tallies = {}
        for name in names:
            await until_received(agent, name, committed)
            tallies[name] = Tally.of(committed, live_ids(agent, name))
        resumed = max(first_arrival(agent, name, fresh) for name in names) - restarted_at
        caught_up = max(last_arrival(agent, name, during_outage) for name in names) - restarted_at
        total = Tally.total(tallies.values())
        record(
            "valkey-restart",
            members=len(names),
            committed=len(committed),
            during_outage=len(during_outage),
            outage_s=seconds(restarted_at - stopped_at),
            lost=total.lost,
            duplicated=total.duplicated,
            out_of_order=total.out_of_order,
            delivery_resumed_s=seconds(resumed),
            caught_up_s=seconds(caught_up),
        )
        for name, tally in tallies.items():
            assert (tally.lost, tally.out_of_order, tally.unexpected) == (0, 0, 0), (name, tally)
        # Outside a crash the outbox sends each event once (docs/delivery.md, "Duplicates");
        # a lost PUBLISH reply around the stop is the one rarer case, so a few are allowed.
        assert total.duplicated <= len(names) * 2, tallies
        for name in names:
            assert lifecycle_events(agent, name) == [], name  # the hub connections stayed up
        await stop_all(agent, names)
        for server in (first, second):
            assert_no_faults(server)


# ------------------------------------------------------------------------------ 2. SIGKILL


async def test_clients_of_a_killed_instance_reconnect_elsewhere_and_catch_up_from_history(
    postgres_url: str, http: httpx.AsyncClient, agent: NodeAgent
) -> None:
    with private_valkey() as valkey, ExitStack() as stack:
        env = serve_env(valkey.url, postgres_url)
        doomed = stack.enter_context(hero_serve(env))
        survivor = stack.enter_context(hero_serve(env))
        owner, witness, *movers = people(5)
        channel = await create_channel(http, survivor, owner, [witness, *movers])
        moving = {
            "moved-ws": "WebSockets",
            "moved-sse": "ServerSentEvents",
            "moved-lp": "LongPolling",
        }
        failover = [doomed.base_url, survivor.base_url]
        for (name, transport), mover in zip(moving.items(), movers, strict=True):
            await join(
                agent,
                name,
                doomed,
                mover,
                channel,
                transport=transport,
                reconnect=RECONNECT_DELAYS_MS,
                failover=failover,
            )
        await join(agent, "witness", survivor, witness, channel, transport="WebSockets")
        readers = dict(zip(moving, movers, strict=True))

        # The writers post through the survivor: ids are UUIDv7 from each instance's clock,
        # so only messages of one instance are sure to sort by id in commit order (the
        # catch-up reads `after=` an id). test_chat_delivery kills the instance that writes.
        writers = Writers(http, survivor, owner, channel)
        writers.start()
        await writers.acknowledged(30)
        os.kill(doomed.process.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        doomed.process.wait()

        seen_before: dict[str, list[str]] = {}
        caught_up: dict[str, list[str]] = {}
        reconnected_at: dict[str, float] = {}
        caught_up_at: dict[str, float] = {}
        for name in moving:
            reconnected = await agent.lifecycle(name, "reconnected", timeout=30 * UNIT)
            reconnected_at[name] = reconnected.at
            events = agent.events[name]
            lost_at = next(n for n, e in enumerate(events) if e.kind == "reconnecting")
            seen_before[name] = [
                str(e.arg["id"])
                for e in events[:lost_at]
                if e.kind == "message" and e.target == CREATED
            ]
            # A reconnected client is a new connection: rejoin, then read what was missed.
            await agent.invoke(name, "JoinChannel", channel)
            last = seen_before[name][-1] if seen_before[name] else None
            caught_up[name] = await history(http, survivor, readers[name], channel, after=last)
            caught_up_at[name] = time.monotonic()
        resumed = len(writers.sent)
        await writers.acknowledged(resumed + 30)
        await writers.stop()
        assert writers.refused == []

        committed = await history(http, survivor, owner, channel)
        assert {s.id for s in writers.sent} == set(committed)
        await until_received(agent, "witness", committed)
        tallies = {"witness": Tally.of(committed, live_ids(agent, "witness"))}
        live_tallies = {}
        for name in moving:
            before = seen_before[name]
            missing = set(committed) - set(before) - set(caught_up[name])
            await until_received(agent, name, missing)
            live = live_ids(agent, name)
            after = live[len(before) :]
            # What the client shows: what it saw, the history it read, then live messages.
            tallies[name] = Tally.of(committed, before + caught_up[name] + after)
            live_tallies[name] = Tally.of(committed, live)
            assert caught_up[name] == sorted(caught_up[name])  # the history is in id order
        total = Tally.total(tallies.values())
        record(
            "sigkill-instance",
            moved=len(moving),
            committed=len(committed),
            lost=total.lost,
            duplicated=Tally.total(live_tallies.values()).duplicated
            + tallies["witness"].duplicated,
            out_of_order=total.out_of_order,
            missed_live_read_from_history=sum(t.lost for t in live_tallies.values()),
            reconnected_s=seconds(max(reconnected_at.values()) - killed_at),
            caught_up_s=seconds(max(caught_up_at.values()) - killed_at),
        )
        for name, tally in tallies.items():
            assert (tally.lost, tally.out_of_order, tally.unexpected) == (0, 0, 0), (name, tally)
        for name, tally in live_tallies.items():
            assert tally.duplicated == 0, (name, tally)  # each live event once
            assert tally.out_of_order == 0, (name, tally)  # live delivery kept commit order
        assert tallies["witness"].duplicated == 0
        for name in moving:
            kinds = lifecycle_events(agent, name)
            assert kinds.count("reconnected") == 1, (name, kinds)
            assert "close" not in kinds, (name, kinds)
            assert any(e.kind == "failover" for e in agent.events[name]), name
        assert lifecycle_events(agent, "witness") == []
        await stop_all(agent, [*moving, "witness"])
        assert_no_faults(survivor)


# ------------------------------------------------------------------------------ 3. PostgreSQL


def assert_unavailable(response: httpx.Response) -> None:
    """The refusal of a request the database cannot serve: 503 problem+json, Retry-After."""
    assert response.status_code == 503, (response.request.url, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0
    body = response.json()
    assert body["status"] == 503
    assert body["title"] == "Service Unavailable"


async def test_the_database_down_for_a_few_seconds_refuses_with_503_and_loses_nothing(
    http: httpx.AsyncClient, agent: NodeAgent
) -> None:
    with private_postgres() as database, private_valkey() as valkey, ExitStack() as stack:
        env = serve_env(valkey.url, create_database(database))
        first = stack.enter_context(hero_serve(env))
        second = stack.enter_context(hero_serve(env))
        owner, near, far = people(3)
        channel = await create_channel(http, first, owner, [near, far])
        await join(agent, "near", first, near, channel, transport="WebSockets")
        await join(agent, "far", second, far, channel, transport="ServerSentEvents")
        names = ["near", "far"]

        back = asyncio.Event()
        writers = Writers(http, first, owner, channel, resume=back)
        writers.start()
        await writers.acknowledged(20)
        await asyncio.to_thread(stop_postgres, database)
        stopped_at = time.monotonic()
        await writers.wait(lambda w: len(w.refused) >= w.count, "refusal of every writer")

        # The outage lasts a few seconds (longer than the outbox's sweep interval and lease),
        # with every kind of REST call on both instances every half second; a stranger's
        # token also makes the principal middleware try to record a new user.
        probes: list[httpx.Response] = []
        for _ in range(OUTAGE_ROUNDS):
            stranger = Person(uuid.uuid4(), owner.tenant, "stranger")
            probes += [
                await http.post(
                    f"{second.base_url}{CHAT}/channels/{channel}/messages",
                    json={"body": "during the outage"},
                    headers=owner.headers(),
                ),
                await http.get(
                    f"{second.base_url}{CHAT}/channels/{channel}/messages",
                    headers=near.headers(),
                ),
                await http.get(f"{first.base_url}{CHAT}/channels", headers=stranger.headers()),
                await http.get(f"{first.base_url}/api/v1/notifications", headers=far.headers()),
            ]
            await asyncio.sleep(0.5 * UNIT)  # the outage's length, not a synchronisation
        for response in [*writers.refused, *probes]:
            assert_unavailable(response)

        await asyncio.to_thread(start_postgres, database)
        restarted_at = time.monotonic()
        back.set()
        first_after = await post(http, second, owner, channel, "the database is back")
        answered_at = time.monotonic()
        resumed = len(writers.sent)
        await writers.acknowledged(resumed + 20)
        await writers.stop()

        committed = await history(http, first, owner, channel)
        acknowledged = {s.id for s in writers.sent} | {str(first_after["id"])}
        assert acknowledged <= set(committed)  # a 201 (or a replayed 200) means committed
        # Each writer sent every message until it was acknowledged, with one Idempotency-Key:
        # nothing else is stored (a refused attempt that had committed was replayed).
        assert set(committed) == acknowledged
        tallies = {}
        for name in names:
            await until_received(agent, name, committed)
            tallies[name] = Tally.of(committed, live_ids(agent, name))
        # What the outbox had to catch up: the messages committed before the restart.
        earlier = [s.id for s in writers.sent if s.at < restarted_at]
        caught_up = max(last_arrival(agent, name, earlier) for name in names) - restarted_at
        late = {
            i for name in names for i in earlier if last_arrival(agent, name, [i]) > restarted_at
        }
        total = Tally.total(tallies.values())
        record(
            "database-outage",
            members=len(names),
            committed=len(committed),
            refused_503=len(writers.refused) + len(probes),
            replayed=sum(1 for s in writers.sent if s.status == 200),
            outage_s=seconds(restarted_at - stopped_at),
            lost=total.lost,
            duplicated=total.duplicated,
            out_of_order=total.out_of_order,
            sent_after_restart=len(late),  # committed before, delivered by the dispatcher
            first_success_s=seconds(answered_at - restarted_at),
            caught_up_s=seconds(max(caught_up, 0.0)),
        )
        for name, tally in tallies.items():
            assert (tally.lost, tally.out_of_order, tally.unexpected) == (0, 0, 0), (name, tally)
        # A "sent" mark the stop cut off re-sends its events once the database is back (at
        # least once, docs/delivery.md); at most the writers' messages in flight.
        assert total.duplicated <= len(names) * writers.count, tallies
        for name in names:
            assert lifecycle_events(agent, name) == [], name  # the hub connections stayed up
            await agent.invoke(name, "JoinChannel", channel)  # and still serve invocations
        await stop_all(agent, names)
        for server in (first, second):
            assert_no_faults(server)
