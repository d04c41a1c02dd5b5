"""The platform's ASGI app: hub requests go straight to the hub, the rest to FastAPI.

A hub connect is two requests (negotiate, then the WebSocket upgrade or the first poll),
and every hub transport request after it is one more. Through FastAPI each would pass
about a dozen layers meant for the REST API: FastAPI's error, telemetry, body-limit and
exit-stack middleware, Starlette's exception middleware and router, and the platform's
body limit, principal and REST rate middleware. None of them applies to a hub path: the
body limits and the REST rate limit exempt it, the hub authenticates the connection
itself (`HubServer(authenticate=...)`), answers its own errors, and an exception that
escapes it is logged and answered 500 by the ASGI server, as by FastAPI's error
middleware. Measured with `bench/connections.py`, those layers were about a fifth of the
server's CPU per new connection.

So `PlatformApp` matches the hub's routes first and hands their requests to `hub_entry`:
the hub behind only what does apply to it, credentialed CORS and the connect rate limit.
Everything else, including the lifespan, goes through FastAPI as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from hero.realtime import HubRoute


class PlatformApp(FastAPI):
    """FastAPI, with the hub's paths served before FastAPI's own middleware stack."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._hub_routes: tuple[HubRoute, ...] = ()
        self._hub_entry: ASGIApp | None = None

    def serve_hub_first(self, routes: Sequence[HubRoute], entry: ASGIApp) -> None:
        """Requests matching one of `routes` go to `entry` (the hub behind the middleware
        that applies to it), the way the route itself would hand them on."""
        self._hub_routes = tuple(routes)
        self._hub_entry = entry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        entry = self._hub_entry
        if entry is not None and scope["type"] in ("http", "websocket"):
            for route in self._hub_routes:
                match, child = route.matches(scope)
                if match is Match.FULL:
                    scope["app"] = self
                    scope.update(child)
                    await entry(scope, receive, send)
                    return
        await super().__call__(scope, receive, send)


def wrapped(app: ASGIApp, middleware: Sequence[Middleware]) -> ASGIApp:
    """`app` inside `middleware`, the first one outermost (as Starlette builds its stack)."""
    for cls, args, kwargs in reversed(middleware):
        app = cls(app, *args, **kwargs)
    return app
