"""`hero serve` under attack: credential expiry and the clock skew, redirects that could carry
a token to a forged host, tokens in refusals, replayed or forged connection tokens.

One real `hero serve` for the module; clients are the official JS client under Node
(`tests/integration/js`), raw HTTP (httpx) and raw WebSockets. The last test reads the
server's whole log: every refusal above was a client's doing, so none may have produced an
ERROR line or a traceback, and no token may appear in it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jwt
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from hero.auth import DEFAULT_LEEWAY_SECONDS
from tests.integration.js.agent import NodeAgent
from tests.integration.platform_app import SIGNING_KEY, clean_environ, hero_serve
from tests.integration.platform_app import mint as _mint
from tests.support.servers import RunningServer

APP_ORIGIN = "https://app.example.com"
HUB = "/realtime/hub"
PRESENCE = "/api/v1/realtime/presence"
HANDSHAKE = b'{"protocol":"json","version":1}\x1e'
SKEW = DEFAULT_LEEWAY_SECONDS

MINTED: list[str] = []
"""Every token this module hands out; none may show up in a response or in the log."""


def mint(user_id: uuid.UUID | str, **kwargs: Any) -> str:
    token = _mint(user_id, **kwargs)
    MINTED.append(token)
    return token


def exp_of(token: str) -> float:
    return float(jwt.decode(token, options={"verify_signature": False})["exp"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def leaks(response: httpx.Response, token: str) -> list[str]:
    """Where in `response` (status line aside) the token or its signature shows up."""
    needles = [token, token.rsplit(".", 1)[-1]]
    needles = [n for n in needles if n]  # an alg-none token has an empty signature
    found = [f"header {k}" for k, v in response.headers.items() if any(n in v for n in needles)]
    if any(n in response.text for n in needles):
        found.append("body")
    return found


@pytest.fixture(scope="module")
def hero() -> Iterator[RunningServer]:
    env = clean_environ(
        {"JwtOptions__SigningKey": SIGNING_KEY, "Cors__AllowedOrigins__0": APP_ORIGIN}
    )
    with hero_serve(env) as server:
        yield server


@pytest.fixture
def http(hero: RunningServer, unit: float) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hero.base_url, timeout=10 * unit) as client:
        yield client


@pytest.fixture
async def ahttp(hero: RunningServer, unit: float) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=hero.base_url, timeout=10 * unit) as client:
        yield client


NEGOTIATE = f"{HUB}/negotiate"
V1 = {"negotiateVersion": "1"}


def negotiate(http: httpx.Client, token: str) -> httpx.Response:
    return http.post(NEGOTIATE, params=V1, headers=bearer(token))


def late_token(user: uuid.UUID, org: str, seconds_left: float) -> str:
    """A token whose `exp` has passed but that the clock skew still accepts for about
    `seconds_left` seconds (the case the skew exists for: a client clock running late)."""
    return mint(user, tenant=org, now=time.time() - SKEW, ttl=seconds_left)


# ------------------------------------------------------------------ expiry and the clock skew


@pytest.mark.interop
async def test_a_token_inside_the_skew_keeps_its_connection_until_exp_plus_skew(
    hero: RunningServer, agent: NodeAgent, unit: float
) -> None:
    """Negotiate accepts a token up to `exp` + skew; the live connection lasts exactly as
    long (not closed within a second of connecting), is then told once with allowReconnect,
    and the fresh token from the accessTokenFactory carries the reconnect."""
    user, org = uuid.uuid4(), f"t-{uuid.uuid4().hex[:10]}"
    late = late_token(user, org, 4 * unit)
    accepted_until = exp_of(late) + SKEW
    fresh = mint(user, tenant=org, ttl=600)
    first_id = await agent.connect(
        "late", hero.base_url + HUB, tokens=[late, fresh], reconnect=True
    )

    reconnecting = await agent.lifecycle("late", "reconnecting", timeout=(4 + 10) * unit)
    # PyJWT and the hub's ticker compare with whole-second `exp`; half a second of slack for
    # the two processes reading the same wall clock at slightly different moments
    assert reconnecting.wall >= accepted_until - 0.5, "closed while negotiate still accepted it"
    reconnected = await agent.lifecycle("late", "reconnected", timeout=10 * unit)
    assert reconnected.data["connectionId"] not in (None, first_id)
    assert [e.kind for e in agent.events["late"]] == ["reconnecting", "reconnected"]
    assert (await agent.state("late"))["state"] == "Connected"
    assert await agent.invoke("late", "JoinGroup", f"dashboard:{org}:d1") is None


@pytest.mark.interop
async def test_the_same_expired_token_is_refused_at_the_reconnect_and_the_client_stops(
    hero: RunningServer, agent: NodeAgent, ahttp: httpx.AsyncClient, unit: float
) -> None:
    """No accept-then-close loop: once the connection is closed for expiry, negotiate
    refuses the token, every reconnect attempt fails, and the client ends Disconnected."""
    user, org = uuid.uuid4(), f"t-{uuid.uuid4().hex[:10]}"
    late = late_token(user, org, 4 * unit)
    await agent.connect("stale", hero.base_url + HUB, tokens=[late], reconnect=[0, 0])

    await agent.lifecycle("stale", "reconnecting", timeout=(4 + 10) * unit)
    await agent.lifecycle("stale", "close", timeout=10 * unit)
    assert [e.kind for e in agent.events["stale"]] == ["reconnecting", "close"]
    refused = await ahttp.post(NEGOTIATE, params=V1, headers=bearer(late))
    assert refused.status_code == 401
    assert refused.headers["content-type"].startswith("application/problem+json")


# ------------------------------------------------------------------ redirects


SLASHED = [
    PRESENCE + "/",
    "/api/v1/chat/channels/",
    "/api/v1/notifications/",
    "/notifications/",
    "/health/live/",
    "/metrics/",
    "/openapi.json/",
    "/docs/",
]


@pytest.mark.parametrize("path", SLASHED)
def test_a_trailing_slash_is_404_never_a_redirect_to_the_host_header(
    http: httpx.Client, path: str
) -> None:
    """Starlette's automatic slash redirect would copy the query (with `access_token`) into
    a Location built from the request's Host: a forged Host would receive the token."""
    token = mint(uuid.uuid4())
    forged = {"Host": "evil.example"}
    for headers in (forged, {**forged, **bearer(token)}):
        response = http.get(path, params={"access_token": token}, headers=headers)
        assert response.status_code == 404, (path, response.status_code)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert "location" not in response.headers
        assert leaks(response, token) == []


# ------------------------------------------------------------------ forged tokens


def _unsigned(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def forged_tokens() -> dict[str, str]:
    user = uuid.uuid4()
    signed = mint(user)
    good = jwt.decode(signed, options={"verify_signature": False})
    header, _, signature = signed.split(".")
    swapped = _unsigned({**good, "tenant": "acme"}).split(".")[1]
    forged = {
        "alg-none": _unsigned(good),
        "wrong-key": mint(user, key="another-signing-key-that-is-long-enough-0123"),
        "wrong-issuer": mint(user, issuer="someone.else"),
        "wrong-audience": mint(user, audience="other.clients"),
        # a valid signature over other claims: the tenant claim edited in transit
        "tenant-swapped": f"{header}.{swapped}.{signature}",
    }
    MINTED.extend(forged.values())
    return forged


@pytest.mark.parametrize("reason", list(forged_tokens()))
async def test_forged_tokens_are_refused_on_the_upgrade_rest_and_sse(
    hero: RunningServer, ahttp: httpx.AsyncClient, unit: float, reason: str
) -> None:
    """Negotiate and presence are covered in test_platform_serve.py; these are the other
    doors: the WebSocket upgrade (query token), the chat REST API and the notifications
    stream (query token)."""
    token = forged_tokens()[reason]
    ws_url = "ws" + hero.base_url.removeprefix("http") + HUB
    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(f"{ws_url}?access_token={token}", open_timeout=10 * unit):
            pass
    assert refused.value.response.status_code == 401, reason
    chat = await ahttp.get("/api/v1/chat/channels", headers=bearer(token))
    assert chat.status_code == 401, reason
    stream = await ahttp.get("/notifications", params={"access_token": token})
    assert stream.status_code == 401, reason
    assert leaks(chat, token) == [] and leaks(stream, token) == []


# ------------------------------------------------------------------ tokens in refusals


def test_refusals_never_echo_the_token(http: httpx.Client) -> None:
    expired = mint(uuid.uuid4(), now=time.time() - SKEW - 700, ttl=600)
    foreign = mint(uuid.uuid4(), key="another-signing-key-that-is-long-enough-0123")
    valid = mint(uuid.uuid4())
    answers = []
    for token in (expired, foreign):
        answers += [
            (token, negotiate(http, token)),
            (token, http.post(NEGOTIATE, params={**V1, "access_token": token})),
            (token, http.get(PRESENCE, params={"userIds": "x"}, headers=bearer(token))),
            (token, http.get("/api/v1/chat/channels", headers=bearer(token))),
        ]
    answers += [
        (valid, http.get(PRESENCE, params={"userIds": "x", "access_token": valid})),
        (valid, http.get(PRESENCE, params={"userIds": "not-a-uuid"}, headers=bearer(valid))),
        (valid, http.get("/no/such/path", params={"access_token": valid})),
        (valid, http.delete(PRESENCE, params={"access_token": valid}, headers=bearer(valid))),
        (valid, http.get(HUB, params={"id": "nope", "access_token": valid})),
        (valid, http.post(HUB, params={"access_token": valid}, content=HANDSHAKE)),
    ]
    for token, response in answers:
        assert 400 <= response.status_code < 500, (response.request.url.path, response.text)
        assert leaks(response, token) == [], (response.request.url.path, response.status_code)


# ------------------------------------------------------------------ connection tokens


async def test_another_users_connection_token_is_refused_on_every_transport(
    hero: RunningServer, ahttp: httpx.AsyncClient, unit: float
) -> None:
    alice, bob = mint(uuid.uuid4()), mint(uuid.uuid4())
    negotiated = await ahttp.post(NEGOTIATE, params=V1, headers=bearer(alice))
    connection_token = negotiated.json()["connectionToken"]
    params = {"id": connection_token}
    sse = {"Accept": "text/event-stream", **bearer(bob)}
    assert (await ahttp.get(HUB, params=params, headers=sse)).status_code == 403
    assert (await ahttp.delete(HUB, params=params, headers=bearer(bob))).status_code == 403
    ws_url = "ws" + hero.base_url.removeprefix("http") + HUB
    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(
            f"{ws_url}?id={connection_token}&access_token={bob}", open_timeout=10 * unit
        ):
            pass
    assert refused.value.response.status_code == 403
    # alice still owns it: the refusals did not spend or end her connection
    async with ws_connect(
        f"{ws_url}?id={connection_token}&access_token={alice}", open_timeout=10 * unit
    ) as ws:
        await ws.send(HANDSHAKE.decode())
        async with asyncio.timeout(10 * unit):
            assert str(await ws.recv()).startswith("{}\x1e")


def test_forged_and_replayed_connection_tokens_are_unknown(http: httpx.Client) -> None:
    alice = mint(uuid.uuid4())
    issued = negotiate(http, alice).json()["connectionToken"]
    # one character changed: the token's MAC no longer matches, so no such connection
    forged = issued[:-1] + ("A" if issued[-1] != "A" else "B")
    for token in (forged, uuid.uuid4().hex, "", "../" + issued):
        response = http.post(HUB, params={"id": token}, content=HANDSHAKE, headers=bearer(alice))
        assert response.status_code in (400, 404), (token, response.status_code)
    # a connection that ended (DELETE) cannot be picked up again with its token
    params = {"id": issued}
    assert http.get(HUB, params=params, headers=bearer(alice)).status_code == 200  # first poll
    assert http.delete(HUB, params=params, headers=bearer(alice)).status_code == 202
    replayed = http.post(HUB, params=params, content=HANDSHAKE, headers=bearer(alice))
    assert replayed.status_code == 404


# ------------------------------------------------------------------ the log (keep last)


def test_no_client_made_an_error_line_a_traceback_or_a_token_in_the_log(
    hero: RunningServer,
) -> None:
    log = hero.log()
    bad = [
        line
        for line in log.splitlines()
        if line.startswith(("ERROR", "CRITICAL")) or "Traceback" in line
    ]
    assert bad == [], "\n".join(bad)
    signatures = [t.rsplit(".", 1)[-1] for t in MINTED]
    leaked = [
        i for i, t in enumerate(MINTED) if t in log or (signatures[i] and signatures[i] in log)
    ]
    assert not leaked, f"{len(leaked)} of {len(MINTED)} tokens found in the server log"
