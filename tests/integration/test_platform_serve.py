"""`hero serve` end to end: authentication, presence, credential expiry, CORS and logs.

One real `hero serve` process for the module (JwtOptions:SigningKey and one allowed CORS
origin from the environment); clients are the official JS client under Node (tokens minted in
Python with the same key, passed through accessTokenFactory), raw HTTP (httpx) and raw
WebSockets (the `websockets` library) where a browser's view matters (Origin headers).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from tests.integration.js.agent import AgentError, NodeAgent
from tests.integration.platform_app import SIGNING_KEY, clean_environ, hero_serve
from tests.integration.platform_app import mint as _mint
from tests.support.servers import RunningServer

APP_ORIGIN = "https://app.example.com"
EVIL_ORIGIN = "https://evil.example"
HUB = "/realtime/hub"
HUB_ALIAS = "/api/v1/realtime/hub"
PRESENCE = "/api/v1/realtime/presence"
HANDSHAKE = b'{"protocol":"json","version":1}\x1e'

MINTED: list[str] = []
"""Every token this module hands out; none may ever show up in the server's log."""


def mint(user_id: uuid.UUID | str, **kwargs: Any) -> str:
    token = _mint(user_id, **kwargs)
    MINTED.append(token)
    return token


def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll a cheap local condition (the server log, filled by a reader thread) until it
    holds; at most `timeout` seconds."""
    step = 0.02
    for _ in range(max(1, round(timeout / step))):
        if predicate():
            return
        await asyncio.sleep(step)
    raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")


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


def negotiate(
    http: httpx.Client, path: str = HUB, token: str | None = None, *, query: bool = False
) -> httpx.Response:
    params = {"negotiateVersion": "1"}
    headers = {}
    if token is not None and query:
        params["access_token"] = token
    elif token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return http.post(f"{path}/negotiate", params=params, headers=headers)


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "sub": str(uuid.uuid4()),
        "iss": "hero.local",
        "aud": "hero.clients",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _signed(claims: dict[str, Any], key: str = SIGNING_KEY) -> str:
    token = jwt.encode(claims, key, algorithm="HS256")
    MINTED.append(token)
    return token


def bad_tokens() -> dict[str, str]:
    """Tokens hero must refuse, by reason (built fresh: their times are relative to now)."""
    now = time.time()
    user = uuid.uuid4()
    return {
        # exp 150 s ago: beyond the 2 min clock skew
        "expired": mint(user, now=now - 750, ttl=600),
        # nbf 5 min ahead: beyond the skew as well
        "not-yet-valid": mint(user, now=now + 300, ttl=600),
        "wrong-issuer": mint(user, issuer="someone.else"),
        "wrong-audience": mint(user, audience="other.clients"),
        "bad-signature": mint(user, key="another-signing-key-that-is-long-enough-0123"),
        "alg-none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims())}.",
        "no-exp": _signed(_claims(exp=None)),
        "nil-uuid-sub": mint(uuid.UUID(int=0)),
        "non-uuid-sub": mint("alice"),
        "garbage": "not.a.jwt",
    }


BAD_TOKEN_NAMES = list(bad_tokens())


# ------------------------------------------------------------------ authentication


@pytest.mark.parametrize("path", [HUB, HUB_ALIAS])
def test_negotiate_without_a_token_is_401(http: httpx.Client, path: str) -> None:
    response = negotiate(http, path)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("reason", BAD_TOKEN_NAMES)
def test_invalid_tokens_are_refused_everywhere(http: httpx.Client, reason: str) -> None:
    token = bad_tokens()[reason]
    for path in (HUB, HUB_ALIAS):
        assert negotiate(http, path, token).status_code == 401, (reason, path, "header")
        assert negotiate(http, path, token, query=True).status_code == 401, (reason, path, "query")
    response = http.get(PRESENCE, params={"userIds": str(uuid.uuid4())}, headers=_bearer(token))
    assert response.status_code == 401, reason


def test_expiry_within_the_clock_skew_is_still_accepted(http: httpx.Client) -> None:
    # exp 60 s ago: inside the 2 min skew (ASP.NET Core's ClockSkew default)
    token = mint(uuid.uuid4(), now=time.time() - 660, ttl=600)
    assert negotiate(http, HUB, token).status_code == 200


@pytest.mark.parametrize(
    "claim",
    ["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier", "nameid", "uid"],
)
def test_user_id_from_any_contract_claim(http: httpx.Client, claim: str) -> None:
    claims = _claims(sub=None, **{claim: str(uuid.uuid4())})
    assert negotiate(http, HUB, _signed(claims)).status_code == 200


@pytest.mark.interop
async def test_js_client_start_is_rejected_without_a_valid_token(
    hero: RunningServer, agent: NodeAgent
) -> None:
    url = hero.base_url + HUB
    cases: dict[str, list[str]] = {"no-token": [], **{k: [v] for k, v in bad_tokens().items()}}
    outcomes = {}
    for reason, tokens in cases.items():
        try:
            await agent.connect(f"bad-{reason}", url, tokens=tokens)
            outcomes[reason] = "connected"
        except AgentError as error:
            outcomes[reason] = "401" if "401" in error.error else error.error
    assert outcomes == dict.fromkeys(cases, "401")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_query_token_only_counts_on_hub_paths(http: httpx.Client) -> None:
    user = uuid.uuid4()
    token = mint(user, tenant=tenant())
    params = {"userIds": str(user)}

    ignored = http.get(PRESENCE, params={**params, "access_token": token})
    assert ignored.status_code == 401
    assert ignored.headers["content-type"].startswith("application/problem+json")

    ok = http.get(PRESENCE, params=params, headers=_bearer(token))
    assert ok.status_code == 200
    assert ok.json() == [{"userId": str(user), "online": False}]

    for path in (HUB, HUB_ALIAS):
        response = negotiate(http, path, token, query=True)
        assert response.status_code == 200, path
        body = response.json()
        assert body["negotiateVersion"] == 1 and body["connectionToken"]


def test_a_connection_belongs_to_the_user_who_negotiated_it(http: httpx.Client) -> None:
    alice, bob = mint(uuid.uuid4()), mint(uuid.uuid4())
    connection_token = negotiate(http, HUB, alice).json()["connectionToken"]
    params = {"id": connection_token}
    assert http.post(HUB, params=params, content=HANDSHAKE, headers=_bearer(bob)).status_code == 403
    assert http.get(HUB, params=params, headers=_bearer(bob)).status_code == 403
    assert http.post(HUB, params=params, content=HANDSHAKE).status_code == 401


@pytest.mark.parametrize("path", [HUB, HUB_ALIAS])
@pytest.mark.interop
async def test_js_client_connects_with_every_transport(
    hero: RunningServer, agent: NodeAgent, path: str
) -> None:
    """accessTokenFactory works on both hub routes; the SSE transport carries the token in
    the query string (Node's WebSocket and HTTP requests send the Authorization header)."""
    org = tenant()
    token = mint(uuid.uuid4(), tenant=org)
    for transport in ("WebSockets", "ServerSentEvents", "LongPolling"):
        name = f"{transport}{path}"
        await agent.connect(name, hero.base_url + path, tokens=[token], transport=transport)
        # a hub method that depends on the connection's principal (its tenant)
        assert await agent.invoke(name, "JoinGroup", f"dashboard:{org}:d1") is None
        await agent.stop(name)


# ------------------------------------------------------------------ presence


@pytest.mark.interop
async def test_presence_changes_reach_the_tenant_only(
    hero: RunningServer, agent: NodeAgent, unit: float
) -> None:
    url = hero.base_url + HUB
    acme, other = tenant(), tenant()
    a, b, d, e = (uuid.uuid4() for _ in range(4))
    c, c2 = uuid.uuid4(), uuid.uuid4()
    tokens = {
        a: mint(a, tenant=acme),
        b: mint(b, tenant=acme),
        d: mint(d, tenant=acme),
        e: mint(e, tenant=acme),
        c: mint(c, tenant=other),
        c2: mint(c2, tenant=other),
    }
    targets = ["PresenceChanged"]

    def online(user: uuid.UUID, value: bool) -> Callable[[Any], bool]:
        return lambda p: p == {"userId": str(user), "online": value}

    def presence_users(name: str) -> set[str]:
        return {p["userId"] for p in agent.args_of(name, "PresenceChanged")}

    async def presence_of(*users: uuid.UUID) -> dict[str, bool]:
        async with httpx.AsyncClient(base_url=hero.base_url, timeout=10 * unit) as client:
            response = await client.get(
                PRESENCE,
                params={"userIds": ",".join(str(u) for u in users)},
                headers=_bearer(tokens[d]),
            )
        assert response.status_code == 200
        return {item["userId"]: item["online"] for item in response.json()}

    # d observes tenant acme; c observes tenant other
    await agent.connect("d", url, tokens=[tokens[d]], targets=targets)
    await agent.next_message("d", "PresenceChanged", where=online(d, True))
    await agent.connect("c", url, tokens=[tokens[c]], targets=targets)
    await agent.next_message("c", "PresenceChanged", where=online(c, True))

    # user a on two devices, then user b connects for the first time
    await agent.connect("a1", url, tokens=[tokens[a]], targets=targets)
    await agent.next_message("d", "PresenceChanged", where=online(a, True))
    await agent.connect("a2", url, tokens=[tokens[a]], targets=targets)
    await agent.connect("b1", url, tokens=[tokens[b]], targets=targets)
    for observer in ("d", "a1", "a2"):
        await agent.next_message(observer, "PresenceChanged", where=online(b, True))
    # presence is per tenant: c is online, but not in the caller's tenant
    assert await presence_of(a, b, c) == {str(a): True, str(b): True, str(c): False}

    # b's last (only) connection closes
    await agent.stop("b1")
    for observer in ("d", "a1", "a2"):
        await agent.next_message(observer, "PresenceChanged", where=online(b, False))
    assert await presence_of(a, b) == {str(a): True, str(b): False}

    # a closes one of two devices: still online, nothing announced
    await agent.stop("a1")
    await agent.connect("e", url, tokens=[tokens[e]], targets=targets)  # probe
    await agent.next_message("d", "PresenceChanged", where=online(e, True))
    assert await presence_of(a) == {str(a): True}
    await agent.stop("a2")
    await agent.next_message("d", "PresenceChanged", where=online(a, False))
    assert await presence_of(a) == {str(a): False}

    # a went online exactly once (second device) and offline exactly once (last device)
    a_events = [p["online"] for p in agent.args_of("d", "PresenceChanged") if p["userId"] == str(a)]
    assert a_events == [True, False]

    # the other tenant heard nothing of acme, and acme nothing of it (follow-up probe)
    await agent.connect("c2", url, tokens=[tokens[c2]], targets=targets)
    await agent.next_message("c", "PresenceChanged", where=online(c2, True))
    assert presence_users("c") == {str(c), str(c2)}
    assert str(c2) not in presence_users("d")
    assert presence_users("d") == {str(d), str(a), str(b), str(e)}


# Credential expiry and the clock skew on live connections: see test_security_serve.py


# ------------------------------------------------------------------ CORS


PREFLIGHT_HEADERS = "x-requested-with,x-signalr-user-agent,authorization"


def _preflight(http: httpx.Client, origin: str) -> httpx.Response:
    return http.options(
        f"{HUB}/negotiate",
        params={"negotiateVersion": "1"},
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": PREFLIGHT_HEADERS,
        },
    )


def _cors_headers(response: httpx.Response) -> dict[str, str]:
    return {
        k.lower(): v for k, v in response.headers.items() if k.lower().startswith("access-control-")
    }


def test_preflight_from_an_allowed_origin_is_credentialed(http: httpx.Client) -> None:
    response = _preflight(http, APP_ORIGIN)
    assert response.status_code in (200, 204)
    cors = _cors_headers(response)
    assert cors["access-control-allow-origin"] == APP_ORIGIN
    assert cors["access-control-allow-credentials"] == "true"
    assert "POST" in cors["access-control-allow-methods"].upper()
    allowed = {h.strip().lower() for h in cors["access-control-allow-headers"].split(",")}
    assert set(PREFLIGHT_HEADERS.split(",")) <= allowed
    assert all(v.strip() != "*" for v in cors.values()), cors
    assert "origin" in response.headers.get("vary", "").lower()


def test_preflight_from_another_origin_gets_no_cors_headers(http: httpx.Client) -> None:
    response = _preflight(http, EVIL_ORIGIN)
    assert _cors_headers(response) == {}


def test_actual_requests_echo_only_allowed_origins(http: httpx.Client) -> None:
    token = mint(uuid.uuid4())
    allowed = http.post(
        f"{HUB}/negotiate",
        params={"negotiateVersion": "1"},
        headers={"Origin": APP_ORIGIN, **_bearer(token)},
    )
    assert allowed.status_code == 200
    assert _cors_headers(allowed) == {
        "access-control-allow-origin": APP_ORIGIN,
        "access-control-allow-credentials": "true",
    }
    refused = http.post(
        f"{HUB}/negotiate",
        params={"negotiateVersion": "1"},
        headers={"Origin": EVIL_ORIGIN, **_bearer(token)},
    )
    assert _cors_headers(refused) == {}
    # an unauthenticated answer to an allowed origin is still readable (credentialed CORS)
    denied = http.post(f"{HUB}/negotiate", headers={"Origin": APP_ORIGIN})
    assert denied.status_code == 401
    assert denied.headers.get("access-control-allow-origin") == APP_ORIGIN


async def test_websocket_upgrade_checks_the_origin(hero: RunningServer, unit: float) -> None:
    token = mint(uuid.uuid4())
    ws_url = "ws" + hero.base_url.removeprefix("http") + HUB

    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(
            ws_url, origin=EVIL_ORIGIN, additional_headers=_bearer(token), open_timeout=10 * unit
        ):
            pass
    assert refused.value.response.status_code == 403

    with pytest.raises(InvalidStatus) as anonymous:
        async with ws_connect(ws_url, origin=APP_ORIGIN, open_timeout=10 * unit):
            pass
    assert anonymous.value.response.status_code == 401

    # an allowed origin, token in the query as browsers send it: a working hub connection
    async with ws_connect(
        f"{ws_url}?access_token={token}", origin=APP_ORIGIN, open_timeout=10 * unit
    ) as ws:
        await ws.send(HANDSHAKE.decode())
        async with asyncio.timeout(10 * unit):
            reply = await ws.recv()
        assert isinstance(reply, str) and reply.startswith("{}\x1e")  # handshake accepted


async def _websocket_handshake(ws_url: str, origin: str, unit: float) -> None:
    async with ws_connect(ws_url, origin=origin, open_timeout=10 * unit) as ws:
        await ws.send(HANDSHAKE.decode())
        async with asyncio.timeout(10 * unit):
            reply = await ws.recv()
        assert isinstance(reply, str) and reply.startswith("{}\x1e")


async def test_websocket_origin_with_the_default_port_matches_the_allow_list(
    hero: RunningServer, unit: float
) -> None:
    token = mint(uuid.uuid4())
    ws_url = "ws" + hero.base_url.removeprefix("http") + f"{HUB}?access_token={token}"
    await _websocket_handshake(ws_url, APP_ORIGIN + ":443", unit)
    with pytest.raises(InvalidStatus) as refused:
        await _websocket_handshake(ws_url, APP_ORIGIN + ":8443", unit)
    assert refused.value.response.status_code == 403


async def test_websocket_from_the_servers_own_page_is_accepted(
    hero: RunningServer, unit: float
) -> None:
    token = mint(uuid.uuid4())
    ws_url = "ws" + hero.base_url.removeprefix("http") + f"{HUB}?access_token={token}"
    await _websocket_handshake(ws_url, hero.base_url, unit)  # the demo page at /


# ------------------------------------------------------------------ logs (keep last)


async def test_tokens_never_reach_the_log(hero: RunningServer, unit: float) -> None:
    token = mint(uuid.uuid4())
    marker = uuid.uuid4().hex
    async with httpx.AsyncClient(base_url=hero.base_url, timeout=10 * unit) as http:
        response = await http.post(
            f"{HUB}/negotiate",
            params={"negotiateVersion": "1", "m": marker, "access_token": token},
        )
        assert response.status_code == 200
        await http.get(PRESENCE, params={"userIds": marker, "access_token": token})
    ws_url = "ws" + hero.base_url.removeprefix("http") + HUB
    async with ws_connect(f"{ws_url}?m={marker}&access_token={token}", open_timeout=10 * unit):
        pass

    def logged() -> bool:
        lines = [line for line in hero.output if marker in line]
        return len(lines) >= 3

    await wait_until(
        logged, 10 * unit, "the log lines of the negotiate, presence and WebSocket requests"
    )
    lines = [line for line in hero.output if marker in line]
    assert all("access_token=***" in line for line in lines), lines
    log = hero.log()
    signatures = [t.rsplit(".", 1)[-1] for t in MINTED]
    leaked = [i for i, t in enumerate(MINTED) if t in log or signatures[i] in log]
    assert not leaked, f"{len(leaked)} of {len(MINTED)} tokens found in the server log"
