"""`Logging:LogLevel` on a running `hero serve`: the access lines (HTTP requests and
WebSocket handshakes, accepted or refused) go when `uvicorn.access` is set to Warning, and
everything else keeps working and logging."""

from __future__ import annotations

import uuid
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest
import websockets

from hero.auth import mint_token
from tests.support.servers import RunningServer, run_hero

KEY = "log-levels-test-signing-key-0123456789abcdef"


async def _negotiate_and_health(server: RunningServer, unit: float) -> None:
    async with httpx.AsyncClient(
        base_url=server.base_url, timeout=10 * unit, trust_env=False
    ) as http:
        assert (await http.get("/health/live")).status_code == 200
        response = await http.post("/realtime/hub/negotiate", params={"negotiateVersion": "1"})
        assert response.status_code == 401  # no token: the hub answers, the request is logged
        token = mint_token(KEY, "hero.local", "hero.clients", uuid.uuid4(), tenant="t1")
        response = await http.post(
            "/realtime/hub/negotiate",
            params={"negotiateVersion": "1"},
            headers={"Authorization": f"Bearer {token}"},
        )
        connection = response.json()["connectionToken"]
    ws_base = "ws" + server.base_url.removeprefix("http") + "/realtime/hub"
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(ws_base, open_timeout=10 * unit)  # no token: refused
    assert refused.value.response.status_code == 401
    url = f"{ws_base}?id={connection}&access_token={token}"
    async with websockets.connect(url, open_timeout=10 * unit) as ws:
        await ws.send('{"protocol":"json","version":1}\x1e')
        assert str(await ws.recv()).startswith("{}\x1e")  # maybe with PresenceChanged behind


def _serve(tmp_path: Path, **extra: str) -> AbstractContextManager[RunningServer]:
    tmp_path.mkdir()
    env = {
        "JwtOptions__SigningKey": KEY,
        "DatabaseOptions__ConnectionString": f"sqlite+aiosqlite:///{tmp_path / 'hero.db'}",
        **extra,
    }
    return run_hero(["serve"], env)


async def test_access_lines_follow_the_uvicorn_access_level(tmp_path: Path, unit: float) -> None:
    with _serve(tmp_path / "default") as server:
        await _negotiate_and_health(server, unit)
    log = server.log()  # read after exit
    assert '"POST /realtime/hub/negotiate' in log  # on by default
    handshakes = [line for line in log.splitlines() if '"WebSocket /realtime/hub' in line]
    assert len(handshakes) == 2, handshakes  # the refused one and the accepted one
    assert all(line.startswith("INFO uvicorn.access: ") for line in handshakes), handshakes
    assert any(line.endswith(" 401") for line in handshakes), handshakes
    accepted = [line for line in handshakes if line.endswith("[accepted]")]
    assert len(accepted) == 1 and "access_token=***" in accepted[0], handshakes

    quiet = {"Logging__LogLevel__uvicorn.access": "Warning"}
    with _serve(tmp_path / "quiet", **quiet) as server:
        await _negotiate_and_health(server, unit)
    log = server.log()
    assert "uvicorn.access" not in log, log[-2000:]
    assert '"WebSocket ' not in log, log[-2000:]
    assert "Application startup complete" in log  # the other INFO lines stay
