"""`Logging:LogLevel` on a running `hero serve`: the access lines go when
`uvicorn.access` is set to Warning, and everything else keeps working and logging."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

import httpx

from tests.support.servers import RunningServer, run_hero

KEY = "log-levels-test-signing-key-0123456789abcdef"


async def _negotiate_and_health(server: RunningServer, unit: float) -> None:
    async with httpx.AsyncClient(
        base_url=server.base_url, timeout=10 * unit, trust_env=False
    ) as http:
        assert (await http.get("/health/live")).status_code == 200
        response = await http.post("/realtime/hub/negotiate", params={"negotiateVersion": "1"})
        assert response.status_code == 401  # no token: the hub answers, the request is logged


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
    assert '"POST /realtime/hub/negotiate' in server.log()  # on by default; read after exit

    quiet = {"Logging__LogLevel__uvicorn.access": "Warning"}
    with _serve(tmp_path / "quiet", **quiet) as server:
        await _negotiate_and_health(server, unit)
    log = server.log()
    assert "uvicorn.access" not in log, log[-2000:]
    assert "Application startup complete" in log  # the other INFO lines stay
