"""`hero serve` accepts WebSocket compression (permessage-deflate, RFC 7692) only when
`Realtime:WebSocketCompression` asks for it.

Every browser and the Node `ws` client behind `@microsoft/signalr` offer permessage-deflate;
uvicorn accepts it by default, which costs each connection its deflate and inflate state
and each frame a deflate per recipient. ASP.NET Core leaves compression off unless the
application opts in; so does hero. The hub answers the offer in its 101 response: with
`Sec-WebSocket-Extensions: permessage-deflate...` when enabled, without it otherwise, and
the connection works either way (the handshake answer arrives).
"""

from __future__ import annotations

import uuid

import pytest
from websockets.asyncio.client import connect

from tests.integration.platform_app import SIGNING_KEY, clean_environ, hero_serve, mint


@pytest.mark.parametrize(("setting", "accepted"), [(None, False), ("true", True)])
async def test_compression_is_accepted_only_when_configured(
    setting: str | None, accepted: bool
) -> None:
    env = {"JwtOptions__SigningKey": SIGNING_KEY, "RateLimiting__Enabled": "false"}
    if setting is not None:
        env["Realtime__WebSocketCompression"] = setting
    with hero_serve(clean_environ(env)) as server:
        url = server.base_url.replace("http://", "ws://")
        token = mint(uuid.uuid4(), tenant="acme", name="alice")
        async with connect(
            f"{url}/realtime/hub?access_token={token}", compression="deflate", open_timeout=10
        ) as socket:
            offered = socket.request.headers.get("Sec-WebSocket-Extensions", "")
            answered = socket.response.headers.get("Sec-WebSocket-Extensions", "")
            await socket.send('{"protocol":"json","version":1}\x1e')
            assert (await socket.recv(decode=True)).startswith("{}")
    assert offered.startswith("permessage-deflate")  # the client did offer it
    assert answered.startswith("permessage-deflate") is accepted, answered
