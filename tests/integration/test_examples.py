"""The programs under examples/, each started as a real process on a free loopback port and
driven from outside: the official JS client under Node, plain HTTP, a raw WebSocket.

- examples/fastapi_app: query-token connections on every transport, identity in hub
  methods, CORS for the one allowed origin, the WebSocket origin check, 401s, and a REST
  announcement that reaches the connected clients of its tenant only;
- examples/dashboard: ticks reach the watchers of a dashboard group, other tenants cannot
  join it;
- examples/bot: against `hero serve`, the bot answers `!ping` with `pong` through the chat
  REST API and ignores everything else, its own messages included.

Absence is proven with a later event that must arrive on the same connection, never with a
sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from tests.integration.js.agent import AgentError, NodeAgent
from tests.integration.platform_app import SIGNING_KEY, clean_environ, hero_serve, mint
from tests.integration.test_chat_cluster import Person, create_channel
from tests.support.servers import REPO, UNIT, RunningServer, launch

HANDSHAKE = '{"protocol":"json","version":1}\x1e'

# ------------------------------------------------------------------ examples/fastapi_app

FASTAPI_KEY = "examples-fastapi-signing-key-0123456789abcdef"
APP_ORIGIN = "https://app.example.test"
EVIL_ORIGIN = "https://evil.example.test"
CHAT_HUB = "/hubs/chat"
ANNOUNCEMENTS = "/api/announcements"


def fastapi_token(user: uuid.UUID, tenant: str, name: str) -> str:
    return mint(user, tenant=tenant, name=name, key=FASTAPI_KEY)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def cors_headers(response: httpx.Response) -> dict[str, str]:
    return {k.lower(): v for k, v in response.headers.items() if k.lower().startswith("access-")}


@pytest.fixture(scope="module")
def fastapi_app() -> Iterator[RunningServer]:
    env = {**os.environ, "EXAMPLE_SIGNING_KEY": FASTAPI_KEY, "EXAMPLE_ALLOWED_ORIGIN": APP_ORIGIN}
    argv = ["-m", "examples.fastapi_app", "--host", "127.0.0.1", "--port", "0"]
    with launch(argv, env) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10 * UNIT, trust_env=False) as client:
        yield client


@pytest.mark.interop
@pytest.mark.parametrize("transport", ["WebSockets", "ServerSentEvents", "LongPolling"])
async def test_fastapi_app_js_client_with_a_query_token(
    fastapi_app: RunningServer, http: httpx.AsyncClient, agent: NodeAgent, transport: str
) -> None:
    tenant, other_tenant = f"acme-{uuid.uuid4().hex[:6]}", f"globex-{uuid.uuid4().hex[:6]}"
    alice, bob = uuid.uuid4(), uuid.uuid4()
    alice_token = fastapi_token(alice, tenant, "alice")
    bob_token = fastapi_token(bob, other_tenant, "bob")
    targets = ["ReceiveMessage", "AnnouncementPosted"]
    hub = fastapi_app.base_url + CHAT_HUB
    # No accessTokenFactory: the token travels in the URL only, as a browser's would.
    await agent.connect(
        "alice", f"{hub}?access_token={alice_token}", transport=transport, targets=targets
    )
    await agent.connect(
        "bob", f"{hub}?access_token={bob_token}", transport=transport, targets=targets
    )

    # The hub signs the message with the connection's identity, not with anything sent.
    sent = await agent.invoke("alice", "SendMessage", "  hello  ")
    assert sent["userId"] == str(alice)
    assert sent["name"] == "alice"
    assert sent["text"] == "hello"
    received = await agent.next_message("alice", "ReceiveMessage")
    assert received.arg == sent
    with pytest.raises(AgentError, match="A message has 1 to"):
        await agent.invoke("alice", "SendMessage", "   ")

    # REST does its work, then the tenant's connections hear about it.
    response = await http.post(
        fastapi_app.base_url + ANNOUNCEMENTS, json={"text": "lunch"}, headers=bearer(alice_token)
    )
    assert response.status_code == 201, response.text
    announcement = response.json()
    assert announcement["authorUserId"] == str(alice)
    event = await agent.next_message("alice", "AnnouncementPosted")
    assert event.arg == announcement

    # Bob's tenant: his own announcement arrives, alice's (sent before it) never did.
    response = await http.post(
        fastapi_app.base_url + ANNOUNCEMENTS, json={"text": "standup"}, headers=bearer(bob_token)
    )
    assert response.status_code == 201, response.text
    await agent.next_message("bob", "AnnouncementPosted", where=lambda a: a["text"] == "standup")
    assert agent.args_of("bob", "AnnouncementPosted") == [response.json()]
    assert agent.args_of("bob", "ReceiveMessage") == []

    listed = await http.get(fastapi_app.base_url + ANNOUNCEMENTS, headers=bearer(alice_token))
    assert listed.status_code == 200
    assert listed.json() == [announcement]


@pytest.mark.interop
async def test_fastapi_app_refuses_missing_and_misplaced_tokens(
    fastapi_app: RunningServer, http: httpx.AsyncClient, agent: NodeAgent
) -> None:
    base = fastapi_app.base_url
    token = fastapi_token(uuid.uuid4(), "acme", "alice")

    no_token = await http.post(base + ANNOUNCEMENTS, json={"text": "x"})
    assert no_token.status_code == 401
    assert no_token.headers["www-authenticate"] == "Bearer"
    # A query token counts on the hub path only: REST ignores it.
    in_query = await http.post(
        base + ANNOUNCEMENTS, params={"access_token": token}, json={"text": "x"}
    )
    assert in_query.status_code == 401
    forged = fastapi_token(uuid.uuid4(), "acme", "mallory").rsplit(".", 1)[0] + ".forged"
    bad = await http.post(base + ANNOUNCEMENTS, json={"text": "x"}, headers=bearer(forged))
    assert bad.status_code == 401

    anonymous = await http.post(base + CHAT_HUB + "/negotiate", params={"negotiateVersion": "1"})
    assert anonymous.status_code == 401
    negotiated = await http.post(
        base + CHAT_HUB + "/negotiate", params={"negotiateVersion": "1", "access_token": token}
    )
    assert negotiated.status_code == 200
    assert negotiated.json()["connectionId"]

    with pytest.raises(AgentError, match="Status code '401'"):
        await agent.connect("anonymous", base + CHAT_HUB)


async def test_fastapi_app_cors_allows_one_origin(
    fastapi_app: RunningServer, http: httpx.AsyncClient
) -> None:
    url = fastapi_app.base_url + ANNOUNCEMENTS

    def preflight(origin: str) -> dict[str, str]:
        return {
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        }

    allowed = await http.options(url, headers=preflight(APP_ORIGIN))
    assert allowed.status_code in (200, 204)
    cors = cors_headers(allowed)
    assert cors["access-control-allow-origin"] == APP_ORIGIN
    assert cors["access-control-allow-credentials"] == "true"
    assert "POST" in cors["access-control-allow-methods"]
    assert {"authorization", "content-type"} <= set(cors["access-control-allow-headers"].split(","))

    refused = await http.options(url, headers=preflight(EVIL_ORIGIN))
    assert cors_headers(refused) == {}

    token = fastapi_token(uuid.uuid4(), "acme", "alice")
    actual = await http.get(url, headers={"Origin": APP_ORIGIN, **bearer(token)})
    assert actual.status_code == 200
    assert cors_headers(actual) == {
        "access-control-allow-origin": APP_ORIGIN,
        "access-control-allow-credentials": "true",
    }
    other = await http.get(url, headers={"Origin": EVIL_ORIGIN, **bearer(token)})
    assert cors_headers(other) == {}


async def test_fastapi_app_websocket_upgrade_checks_the_origin(fastapi_app: RunningServer) -> None:
    """CORS does not cover WebSockets: the hub itself refuses a foreign Origin."""
    token = fastapi_token(uuid.uuid4(), "acme", "alice")
    ws_url = "ws" + fastapi_app.base_url.removeprefix("http") + CHAT_HUB + f"?access_token={token}"
    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(ws_url, origin=EVIL_ORIGIN, open_timeout=10 * UNIT):
            pass
    assert refused.value.response.status_code == 403

    async with ws_connect(ws_url, origin=APP_ORIGIN, open_timeout=10 * UNIT) as ws:
        await ws.send(HANDSHAKE)
        async with asyncio.timeout(10 * UNIT):
            reply = await ws.recv()
        assert isinstance(reply, str) and reply.startswith("{}\x1e")


def test_fastapi_app_without_a_signing_key_says_so() -> None:
    """The documented command, `python -m uvicorn examples.fastapi_app.app:app`."""
    env = {k: v for k, v in os.environ.items() if k != "EXAMPLE_SIGNING_KEY"}
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run(
        [sys.executable, "-m", "uvicorn", "examples.fastapi_app.app:app", "--port", "0"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30 * UNIT,
        check=False,
    )
    assert result.returncode != 0
    assert "EXAMPLE_SIGNING_KEY is not set" in result.stderr


# ------------------------------------------------------------------ examples/dashboard

TICK = "DashboardTick"


def platform_env(tmp_path: Path) -> dict[str, str]:
    """The platform's configuration for one test: the tests' signing key, its own SQLite."""
    return clean_environ(
        {
            "JwtOptions__SigningKey": SIGNING_KEY,
            "DatabaseOptions__ConnectionString": f"sqlite+aiosqlite:///{tmp_path / 'hero.db'}",
        }
    )


@pytest.fixture
def tenants() -> tuple[str, str]:
    return f"acme-{uuid.uuid4().hex[:6]}", f"globex-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def dashboard(tmp_path: Path, tenants: tuple[str, str]) -> Iterator[RunningServer]:
    acme, globex = tenants
    argv = ["-m", "examples.dashboard", "--host", "127.0.0.1", "--port", "0"]
    argv += ["--interval", str(0.2 * UNIT), "--dashboard", f"{acme}:sales"]
    argv += ["--dashboard", f"{globex}:ops"]
    with launch(argv, platform_env(tmp_path), cwd=tmp_path) as server:
        yield server


@pytest.mark.interop
async def test_dashboard_ticks_reach_the_watchers_of_their_tenant_only(
    dashboard: RunningServer, tenants: tuple[str, str], agent: NodeAgent
) -> None:
    acme, globex = tenants
    hub = dashboard.base_url + "/realtime/hub"
    await agent.connect("acme", hub, tokens=[mint(uuid.uuid4(), tenant=acme)], targets=[TICK])
    await agent.connect("globex", hub, tokens=[mint(uuid.uuid4(), tenant=globex)], targets=[TICK])

    assert await agent.invoke("acme", "JoinGroup", f"dashboard:{acme}:sales") is None
    third = await agent.next_message("acme", TICK, count=3)
    ticks = [e.arg for e in agent.messages("acme", TICK)]
    assert third.arg in ticks
    # globex:ops was fed on every round too, before the last of these: none leaked here.
    assert {t["dashboardId"] for t in ticks} == {"sales"}
    for tick in ticks:
        assert isinstance(tick["value"], int | float) and 0 <= tick["value"] <= 100
    stamps = [datetime.fromisoformat(t["at"]) for t in ticks]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)

    # Another tenant's user may not watch acme's dashboard, and gets nothing from it.
    with pytest.raises(AgentError, match="Not allowed to join"):
        await agent.invoke("globex", "JoinGroup", f"dashboard:{acme}:sales")
    assert await agent.invoke("globex", "JoinGroup", f"dashboard:{globex}:ops") is None
    await agent.next_message("globex", TICK, count=2)
    assert {e.arg["dashboardId"] for e in agent.messages("globex", TICK)} == {"ops"}


# ------------------------------------------------------------------ examples/bot

CHAT = "/api/v1/chat"
CREATED = "ChatMessageCreated"


@pytest.fixture
def hero(tmp_path: Path) -> Iterator[RunningServer]:
    with hero_serve(platform_env(tmp_path), cwd=tmp_path) as server:
        yield server


async def post(
    http: httpx.AsyncClient, base: str, author: Person, channel: str, body: str
) -> dict[str, Any]:
    response = await http.post(
        f"{base}{CHAT}/channels/{channel}/messages", json={"body": body}, headers=author.headers()
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


@contextlib.asynccontextmanager
async def bot_process(url: str, token: str) -> AsyncIterator[list[str]]:
    """`python -m examples.bot --url URL` with the token in HERO_TOKEN, yielded once it
    logs "bot connected"; its output (stdout and stderr) accumulates in the yielded list."""
    env = clean_environ({"HERO_TOKEN": token, "PYTHONPATH": str(REPO)})
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "examples.bot",
        "--url",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
        cwd=str(REPO),
    )
    output: list[str] = []
    connected = asyncio.Event()

    async def pump() -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            line = raw.decode(errors="replace")
            output.append(line)
            if "bot connected" in line:
                connected.set()

    reader = asyncio.create_task(pump())
    try:
        ready = asyncio.create_task(connected.wait())
        exited = asyncio.create_task(process.wait())
        await asyncio.wait({ready, exited}, timeout=20 * UNIT, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        exited.cancel()
        if not connected.is_set():
            with contextlib.suppress(TimeoutError):  # the rest of its output, if it exited
                async with asyncio.timeout(5 * UNIT):
                    await asyncio.shield(reader)
            raise AssertionError("the bot did not connect:\n" + "".join(output))
        yield output
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(10 * UNIT):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


def authored_by(person: Person, body: str) -> Any:
    return lambda m: m.get("authorUserId") == str(person.id) and m.get("body") == body


@pytest.mark.interop
async def test_bot_answers_ping_with_pong(
    hero: RunningServer, http: httpx.AsyncClient, agent: NodeAgent
) -> None:
    tenant = f"tenant-{uuid.uuid4().hex[:8]}"
    human = Person(uuid.uuid4(), tenant, "human")
    bot = Person(uuid.uuid4(), tenant, "pingbot")
    base = hero.base_url
    channel = await create_channel(http, hero, human, [bot])
    await agent.connect("human", base + "/realtime/hub", tokens=[human.token()], targets=[CREATED])

    async with bot_process(base, bot.token()) as output:
        ping = await post(http, base, human, channel, "!ping are you there?")
        pong = await agent.next_message("human", CREATED, where=authored_by(bot, "pong"))
        assert pong.arg["channelId"] == channel
        assert pong.arg["id"] != ping["id"]

        # Not a command, and the bot's own `!ping`: no answer to either. The second human
        # `!ping` is answered after them (one channel, one order), so by the time its
        # `pong` arrives, an answer to either would have arrived before it.
        await post(http, base, human, channel, "hello, no command here")
        await post(http, base, bot, channel, "!ping from the bot itself")
        await post(http, base, human, channel, "  !ping again")  # stored trimmed
        await agent.next_message("human", CREATED, where=authored_by(bot, "pong"), count=2)
        bodies = [m["body"] for m in agent.args_of("human", CREATED)]
        assert bodies == [
            "!ping are you there?",
            "pong",
            "hello, no command here",
            "!ping from the bot itself",
            "!ping again",
            "pong",
        ], "".join(output)


async def test_bot_with_a_bad_token_stops_and_says_why(hero: RunningServer) -> None:
    forged = mint(uuid.uuid4(), key="another-signing-key-0123456789abcdef-0000")
    env = clean_environ({"HERO_TOKEN": forged, "PYTHONPATH": str(REPO)})
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "examples.bot",
        "--url",
        hero.base_url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
        cwd=str(REPO),
    )
    try:
        async with asyncio.timeout(20 * UNIT):
            out, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 1
    assert "the hub refused the token (401)" in out.decode()
