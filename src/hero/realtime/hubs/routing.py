"""HubRoute: mounts a HubServer at an exact path in Starlette or FastAPI.

Starlette's `Mount` only matches `/path/...` (it redirects `/path` for HTTP and refuses it
for WebSockets), but SignalR clients use the bare hub URL for WebSockets, polls and sends
(`/chat?id=...`) and `/chat/negotiate` for negotiate. This route matches both.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send

from hero.realtime.hubs.server import HubServer


class HubRoute(BaseRoute):
    """`Starlette(routes=[HubRoute("/chat", server)])` or `app.router.routes.append(...)`."""

    def __init__(self, path: str, server: HubServer, *, name: str | None = None) -> None:
        if not path.startswith("/") or path.endswith("/"):
            raise ValueError("hub path must start with '/' and not end with '/'")
        self.path = path
        self.server = server
        self.name = name
        self._lower = path.lower()

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] not in ("http", "websocket"):
            return Match.NONE, {}
        root = scope.get("root_path", "")
        path: str = scope["path"]
        if root and path.startswith(root):
            path = path[len(root) :]
        lowered = path.lower()
        if lowered == self._lower or lowered.startswith(self._lower + "/"):
            return Match.FULL, {"root_path": root + path[: len(self.path)]}
        return Match.NONE, {}

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.server(scope, receive, send)
