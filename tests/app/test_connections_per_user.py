"""`EndpointOptions.maximum_connections_per_user` in the library: the connection registry
counts a user's connections from negotiate to their end; past the limit a negotiate is a 429
problem, other users and anonymous connections are not affected, and an ended connection
makes room at once."""

from __future__ import annotations

import contextlib

import pytest
from starlette.applications import Starlette

from hero.realtime import EndpointOptions, HubRoute, HubServer, HubServerOptions, Identity
from hero.realtime.testing import ConformanceHub, HubConnectionError, HubTestClient
from hero.realtime.transports.asgi import Scope, header

TIMEOUT = 5.0
LIMIT = 2


async def by_header(scope: Scope) -> Identity | None:
    user = header(scope, b"x-user")
    return Identity(user_id=user) if user else None


def limited_app() -> tuple[Starlette, HubServer]:
    options = HubServerOptions(endpoint=EndpointOptions(maximum_connections_per_user=LIMIT))
    server = HubServer(ConformanceHub, options=options, authenticate=by_header)
    return Starlette(routes=[HubRoute("/hub", server)]), server


def client(app: Starlette, user: str | None) -> HubTestClient:
    headers = {"x-user": user} if user else {}
    return HubTestClient(app, "/hub", headers=headers, timeout=TIMEOUT)


async def test_a_user_past_the_limit_is_refused_until_a_connection_ends() -> None:
    app, server = limited_app()
    async with contextlib.AsyncExitStack() as stack:
        first = await stack.enter_async_context(client(app, "alice"))
        await stack.enter_async_context(client(app, "alice"))
        with pytest.raises(HubConnectionError) as refused:
            await client(app, "alice").start()
        assert refused.value.status_code == 429
        assert f"already has {LIMIT} open connections" in str(refused.value)
        assert server.endpoint.user_limit_refusals == 1

        bob = await stack.enter_async_context(client(app, "bob"))
        assert await bob.invoke("Echo", "bob") == "bob"
        anonymous = [await stack.enter_async_context(client(app, None)) for _ in range(LIMIT + 1)]
        assert await anonymous[-1].invoke("Echo", 1) == 1

        await first.stop()  # long polling: the DELETE ends the connection before its 202
        again = await stack.enter_async_context(client(app, "alice"))
        assert await again.invoke("Echo", "again") == "again"
        assert server.endpoint.connections.count_for("alice") == LIMIT
    await server.aclose()
    assert server.endpoint.connections.count_for("alice") == 0
