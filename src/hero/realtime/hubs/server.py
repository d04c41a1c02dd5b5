"""HubServer: one hub as a mountable ASGI app, and HubContext for sending from outside."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, field

from hero.realtime.connections import Authenticator, ConnectionEndpoint, EndpointOptions, Relay
from hero.realtime.connections.endpoint import OriginCheck
from hero.realtime.hubs.clients import CallerClients, Clients, Groups
from hero.realtime.hubs.delivery import Operation, apply
from hero.realtime.hubs.hub import Hub, HubCallerContext, HubFactory
from hero.realtime.hubs.listener import HubListener
from hero.realtime.lifetime import HubLifetimeManager, MemoryLifetimeManager
from hero.realtime.runtime import (
    ConnectionObserver,
    HubConnection,
    HubConnectionHandler,
    HubDispatcher,
    HubOptions,
    LimitObserver,
    describe_hub,
)
from hero.realtime.runtime.observers import InvocationObserver
from hero.realtime.transports.asgi import Receive, Scope, Send


class HubContext:
    """Send to clients and manage groups from anywhere outside a hub (after a commit, from
    a background job, ...). Safe to share; holds no connection state."""

    __slots__ = ("_lifetime", "clients", "groups")

    def __init__(
        self,
        lifetime: HubLifetimeManager,
        options: HubOptions | None = None,
        limit_observer: LimitObserver | None = None,
    ) -> None:
        """`options`: the hub's options, for the group-name rules of `groups`."""
        self._lifetime = lifetime
        self.clients = Clients(lifetime)
        self.groups = Groups(lifetime, options, limit_observer)

    async def apply(self, operation: Operation) -> None:
        """Perform a stored send or group move (see `Delivery`, `GroupMove`)."""
        await apply(self._lifetime, operation)

    def listen(
        self,
        groups: Collection[str],
        *,
        targets: Collection[str] | None = None,
        capacity: int = 256,
    ) -> HubListener:
        """Hear, in server code, what is sent to `groups` from any instance."""
        return HubListener(self._lifetime, groups, targets, capacity)


@dataclass(frozen=True, slots=True)
class HubServerOptions:
    """Hub runtime options plus HTTP-connection options."""

    hub: HubOptions = field(default_factory=HubOptions)
    endpoint: EndpointOptions = field(default_factory=EndpointOptions)


class HubServer:
    """Serves one Hub subclass over every transport and protocol.

    It is an ASGI app: mount it at the hub's path (`Mount("/chat", app=server)` in
    Starlette, `app.mount("/chat", server)` in FastAPI). Call `aclose()` (or use
    `lifespan()`) at shutdown so open connections end cleanly.
    """

    def __init__(
        self,
        hub_type: type[Hub],
        *,
        options: HubServerOptions | None = None,
        lifetime_manager: HubLifetimeManager | None = None,
        authenticate: Authenticator | None = None,
        origin_allowed: OriginCheck | None = None,
        hub_factory: HubFactory | None = None,
        connection_observer: ConnectionObserver | None = None,
        invocation_observer: InvocationObserver | None = None,
        relay: Relay | None = None,
        limit_observer: LimitObserver | None = None,
    ) -> None:
        """`relay`: forwards long-polling and SSE requests that reach this instance for a
        connection another instance holds (several instances without sticky sessions).
        `limit_observer`: told about every refusal of the hub limits (group names, groups
        per connection, invocation rate)."""
        self.options = options or HubServerOptions()
        self.hub_type = hub_type
        self.lifetime = lifetime_manager or MemoryLifetimeManager()
        self.context = HubContext(self.lifetime, self.options.hub, limit_observer)
        self._factory: HubFactory = hub_factory or hub_type
        self._groups = Groups(self.lifetime, self.options.hub, limit_observer)
        self.dispatcher = HubDispatcher(
            describe_hub(hub_type),
            self._activate,
            self.lifetime,
            self.options.hub,
            invocation_observer,
            limit_observer=limit_observer,
        )
        self.handler = HubConnectionHandler(
            self.dispatcher, self.lifetime, self.options.hub, connection_observer
        )
        self.endpoint = ConnectionEndpoint(
            self.handler.run,
            self.options.endpoint,
            authenticate=authenticate,
            origin_allowed=origin_allowed,
            relay=relay,
        )

    def _activate(self, connection: HubConnection) -> Hub:
        hub = self._factory()
        hub.context = HubCallerContext(connection)
        hub.clients = CallerClients(self.lifetime, connection.connection_id)
        hub.groups = self._groups
        return hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan_protocol(receive, send)
            return
        await self.endpoint(scope, receive, send)

    async def _lifespan_protocol(self, receive: Receive, send: Send) -> None:
        """When the HubServer is the root ASGI app, the server's lifespan starts and stops it
        (the lifetime manager's backplane included)."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def start(self) -> None:
        await self.lifetime.start()
        await self.endpoint.start()

    async def close_connections(self) -> None:
        """End every connection now (pending polls answer 204, SSE streams end, sockets
        close); the backplane stays up so their disconnects still reach other instances."""
        await self.endpoint.aclose()

    async def aclose(self) -> None:
        await self.close_connections()
        await self.handler.aclose()
        await self.lifetime.stop()

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[HubServer]:
        """`async with server.lifespan():` inside the host app's lifespan."""
        await self.start()
        try:
            yield self
        finally:
            await self.aclose()
