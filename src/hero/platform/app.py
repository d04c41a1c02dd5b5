"""The composition root: `create_app(settings)` builds the whole platform as one ASGI app."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import re
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Route, compile_path

from hero.auth import JwtValidator, Principal
from hero.caching import (
    Cache,
    CacheError,
    MemoryCache,
    MemoryPresenceStore,
    PresenceStore,
    ValkeyCache,
    ValkeyPresenceStore,
    create_valkey_client,
)
from hero.conventions import ChannelLookup, ChannelMembership, NoChannels
from hero.data import Database, DatabaseError, Outbox
from hero.modules.chat import ChatService, chat_router
from hero.modules.contracts import NotificationSink, UserLookup
from hero.modules.http import Problem
from hero.modules.notifications import NotificationService, notifications_router
from hero.modules.users import UserDirectory
from hero.platform.body_limit import BodyLimitMiddleware
from hero.platform.demo import demo_routes
from hero.platform.front_door import PlatformApp, wrapped
from hero.platform.http_limits import ConnectRateMiddleware, RestRateMiddleware
from hero.platform.hub import (
    GroupPolicy,
    RealtimeServices,
    compose_app_hub,
    same_tenant_dashboards,
)
from hero.platform.metrics import CONTENT_TYPE, PlatformMetrics
from hero.platform.presence import PresenceTracker
from hero.platform.rate_limit import FixedWindowLimiter
from hero.platform.schema import platform_schema
from hero.platform.settings import Settings
from hero.platform.unavailable import install_database_unavailable_handler
from hero.platform.web import (
    Authenticator,
    PrincipalMiddleware,
    authenticated,
    document_problems,
    problem,
)
from hero.realtime import (
    EndpointOptions,
    HubLifetimeManager,
    HubOptions,
    HubRoute,
    HubServer,
    HubServerOptions,
    Identity,
    Relay,
    ShardedRelayBus,
    ValkeyLifetimeManager,
    ValkeyRelayBus,
    operation_from_wire,
)
from hero.web import CredentialedCorsMiddleware, origin_allowed_for, origin_checker

logger = logging.getLogger("hero.platform")

HUB_PATHS = ("/realtime/hub", "/api/v1/realtime/hub")
KEY_PREFIX = "hero:"
"""Prefix of the presence keys and the backplane channels. The platform's Cache has none:
docs/platform.md names its keys exactly (the typing claim is `chat:typing:{channelId}:{userId}`)."""
MAX_PRESENCE_IDS = 500


@dataclass
class PlatformModules:
    """What application modules contribute: hub mixins, channel lookups, group patterns."""

    hub_mixins: Sequence[type[Any]] = ()
    channels: ChannelLookup = field(default_factory=NoChannels)
    membership: ChannelMembership = field(default_factory=NoChannels)
    group_policies: Sequence[GroupPolicy] = field(
        default_factory=lambda: [same_tenant_dashboards()]
    )


@dataclass
class Platform:
    """Everything `create_app` built, for tests and for modules' background jobs."""

    settings: Settings
    metrics: PlatformMetrics
    cache: Cache
    database: Database
    hub: HubServer | None
    presence: PresenceTracker | None
    valkey: Any | None
    outbox: Outbox
    chat: ChatService


def hub_options(settings: Settings, *, require_authentication: bool = True) -> HubServerOptions:
    """Hub and endpoint options from the `Realtime` settings.

    With a Valkey backplane (`CachingOptions:Redis`), several instances or processes serve
    one hub and any request of a connection may reach any of them: connection tokens are
    signed with a key derived from the JWT signing key and name the instance that holds the
    connection, so another one can adopt a WebSocket negotiated elsewhere or relay a
    long-polling or SSE request to the owner (see `relay_for`), and a stateful reconnect's
    resumed WebSocket with it. The processes of `hero serve --workers N` are such instances.
    """
    realtime = settings.realtime
    token_key: bytes | None = None
    if settings.caching.redis is not None:
        secret = settings.jwt.signing_key or settings.caching.redis_url() or ""
        token_key = hashlib.sha256(b"hero connection tokens\0" + secret.encode()).digest()
    limits = settings.rate_limiting
    endpoint = EndpointOptions(
        require_authentication=require_authentication,
        allow_stateful_reconnects=realtime.allow_stateful_reconnects,
        connection_token_key=token_key,
        maximum_connections_per_user=limits.maximum_connections_per_user if limits.enabled else 0,
    )
    return HubServerOptions(
        hub=HubOptions(
            keep_alive_interval=realtime.keep_alive_interval_seconds,
            client_timeout_interval=realtime.client_timeout_interval_seconds,
            handshake_timeout=realtime.handshake_timeout_seconds,
            maximum_receive_message_size=realtime.maximum_receive_message_size,
            enable_detailed_errors=realtime.enable_detailed_errors,
            maximum_group_name_length=realtime.maximum_group_name_length,
            maximum_groups_per_connection=realtime.maximum_groups_per_connection,
            maximum_invocations_per_second=realtime.maximum_invocations_per_second,
            invocation_burst=realtime.invocation_burst,
        ),
        endpoint=endpoint,
    )


def relay_for(settings: Settings, valkey: Any | None) -> Relay | None:
    """Relays long-polling and SSE requests between instances over Valkey; None without a
    backplane. On one server the bus is classic pub/sub (`ValkeyRelayBus`: receiver counts
    and `PUBSUB NUMSUB` say who listens); on a Valkey Cluster it is sharded pub/sub with
    liveness from registry entries that expire (`ShardedRelayBus`), since a receiver count
    there covers one node only. Either way no affinity is needed."""
    endpoint = settings.caching.redis
    if valkey is None or endpoint is None:
        return None
    if endpoint.cluster:
        return Relay(ShardedRelayBus(valkey, key_prefix=KEY_PREFIX))
    return Relay(ValkeyRelayBus(valkey, key_prefix=KEY_PREFIX))


def lifetime_manager(valkey: Any | None, hub_name: str) -> HubLifetimeManager | None:
    """The Valkey backplane when Valkey is configured; None means the in-memory default."""
    if valkey is None:
        return None
    return ValkeyLifetimeManager(valkey, hub_name=hub_name, key_prefix=KEY_PREFIX)


def rate_limiters(settings: Settings) -> dict[str, FixedWindowLimiter]:
    """The `RateLimiting` windows by name (`negotiate`, `rest`; none when disabled)."""
    limits = settings.rate_limiting
    if not limits.enabled:
        return {}
    return {
        name: FixedWindowLimiter(
            rate.permit_limit, rate.window_seconds, max_keys=limits.maximum_tracked_clients
        )
        for name, rate in (("negotiate", limits.negotiate), ("rest", limits.rest))
    }


class StartupError(Exception):
    """A dependency named by a setting is unusable; `str()` is one line naming the key."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key


async def migrate_database(settings: Settings) -> tuple[str, ...]:
    """Bring the configured database to the current schema; returns its revisions.
    Raises StartupError with one clear line when it cannot."""
    database = Database(settings.database.connection_string)
    try:
        return await database.migrate(platform_schema())
    except DatabaseError as exc:
        raise StartupError("DatabaseOptions:ConnectionString", str(exc)) from None
    finally:
        await database.aclose()


async def preflight(settings: Settings) -> None:
    """Check what start-up needs before serving: the database can be migrated and, when
    configured, Valkey answers. Raises StartupError with one clear line."""
    await migrate_database(settings)
    await preflight_valkey(settings)


async def preflight_valkey(settings: Settings) -> None:
    """Raise StartupError unless the configured Valkey (if any) answers a PING."""
    url = settings.caching.redis_url()
    if url is None:
        return
    client = create_valkey_client(url, socket_timeout=5.0, connect_timeout=5.0)
    try:
        async with asyncio.timeout(10):
            await client.ping()
    except Exception as exc:
        endpoint = settings.caching.redis
        where = f"{endpoint.host}:{endpoint.port}" if endpoint is not None else "Valkey"
        raise StartupError("CachingOptions:Redis", f"cannot reach {where}: {exc}") from None
    finally:
        await client.aclose()


def create_app(
    settings: Settings,
    modules: PlatformModules | None = None,
    *,
    users: UserLookup | None = None,
    notifications: NotificationSink | None = None,
) -> Starlette:
    """Build the platform. The settings must carry a signing key (the CLI generates a
    development key when none is configured). Constructors do no I/O; connections to
    Valkey open lazily and close in the lifespan.

    The chat module is always installed; `users` and `notifications` resolve mentions and
    create mention notifications (without them no mention resolves)."""
    if not settings.jwt.has_signing_key:
        raise ValueError("JwtOptions:SigningKey must be set before create_app")
    modules = modules or PlatformModules()
    metrics = PlatformMetrics()
    validator = JwtValidator(settings.jwt.issuer, settings.jwt.audience, settings.jwt.signing_key)
    authenticator = Authenticator(validator)
    origin_allowed = origin_checker(settings.cors.allowed_origins, settings.cors.allow_all)
    # WebSocket upgrades also accept the request's own origin (the page at `/`); the
    # endpoint applies that part once it passes the scope along with the origin.
    websocket_origin_allowed = origin_allowed_for(origin_allowed)

    database = Database(settings.database.connection_string)
    redis_url = settings.caching.redis_url()
    valkey = create_valkey_client(redis_url) if redis_url else None
    cache: Cache = ValkeyCache(valkey) if valkey is not None else MemoryCache()
    store: PresenceStore = (
        ValkeyPresenceStore(valkey, KEY_PREFIX) if valkey is not None else MemoryPresenceStore()
    )

    hub: HubServer | None = None
    hub_routes: list[HubRoute] = []
    presence: PresenceTracker | None = None
    routes: list[BaseRoute] = []

    async def deliver(payload: Any) -> None:
        if hub is not None:
            await hub.context.apply(operation_from_wire(payload))

    outbox = Outbox(database, deliver)
    directory = UserDirectory(database)
    notification_service = NotificationService(database, outbox)
    chat = ChatService(
        outbox,
        users if users is not None else directory,
        notifications if notifications is not None else notification_service,
    )
    if isinstance(modules.channels, NoChannels):
        modules.channels = chat
    if isinstance(modules.membership, NoChannels):
        modules.membership = chat

    async def seen_identity(scope: Any) -> Identity | None:
        identity = await authenticator.identity(scope)
        if identity is not None and isinstance(identity.principal, Principal):
            await directory.seen(identity.principal)
        return identity

    if settings.realtime.enabled:
        hub_type = compose_app_hub(modules.hub_mixins)
        services_box: list[RealtimeServices] = []
        relay = relay_for(settings, valkey)
        if relay is not None:
            metrics.watch_relay(relay)
        hub = HubServer(
            hub_type,
            options=hub_options(settings),
            lifetime_manager=lifetime_manager(valkey, "AppHub"),
            relay=relay,
            authenticate=seen_identity,
            origin_allowed=websocket_origin_allowed,
            hub_factory=lambda: hub_type(services_box[0]),
            connection_observer=metrics,
            invocation_observer=metrics,
            limit_observer=metrics,
        )
        ttl = settings.realtime.presence_ttl_seconds
        presence = PresenceTracker(store, hub.context, ttl=ttl, heartbeat=ttl / 3)
        services_box.append(
            RealtimeServices(
                cache=cache,
                presence=presence,
                channels=modules.channels,
                membership=modules.membership,
                group_policies=tuple(modules.group_policies),
                typing_observer=metrics,
            )
        )
        if settings.realtime.map:
            hub_routes = [HubRoute(path, hub) for path in HUB_PATHS]
            routes += hub_routes

    platform = Platform(settings, metrics, cache, database, hub, presence, valkey, outbox, chat)

    async def presence_endpoint(request: Request, principal: Principal) -> Response:
        raw = request.query_params.get("userIds", "")
        parts = [part.strip() for part in raw.split(",") if part.strip()]
        if len(parts) > MAX_PRESENCE_IDS:
            return problem(
                400, "Too many user ids", f"At most {MAX_PRESENCE_IDS} userIds per request."
            )
        ids: list[str] = []
        for part in parts:
            try:
                ids.append(str(uuid.UUID(part)))
            except ValueError:
                return problem(400, "Invalid user id", "userIds must be UUIDs.")
        if presence is None:
            return JSONResponse([{"userId": u, "online": False} for u in ids])
        try:
            online = await presence.online(principal.tenant_id, ids)
        except CacheError as exc:
            logger.warning("presence lookup failed: %s: %s", type(exc).__name__, exc)
            return problem(503, "Presence unavailable", "Presence is temporarily unavailable.")
        return JSONResponse([{"userId": u, "online": online[u]} for u in ids])

    async def live(request: Request) -> Response:
        return JSONResponse({"status": "live"})

    async def ready(request: Request) -> Response:
        checks: dict[str, str] = {}
        healthy = True
        try:
            await database.check()
            checks["database"] = "ok"
        except DatabaseError as exc:
            healthy = False
            logger.warning("readiness: the database is unavailable: %s", exc)
            checks["database"] = f"unavailable: {exc.kind}"
        if valkey is not None:
            try:
                async with asyncio.timeout(2):
                    await valkey.ping()
                checks["valkey"] = "ok"
            except Exception as exc:
                healthy = False
                logger.warning("readiness: Valkey is unavailable: %s: %s", type(exc).__name__, exc)
                checks["valkey"] = f"unavailable: {type(exc).__name__}"
        return JSONResponse(
            {"status": "ready" if healthy else "unavailable", "checks": checks},
            status_code=200 if healthy else 503,
        )

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    routes += [
        Route("/api/v1/realtime/presence", authenticated(presence_endpoint), methods=["GET"]),
        Route("/health/live", live, methods=["GET"]),
        Route("/health/ready", ready, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        *demo_routes(settings),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            try:
                revisions = await database.migrate(platform_schema())
            except DatabaseError as exc:
                logger.error("database %s is not usable: %s", database.url.render_as_string(), exc)
                raise
            logger.info("database schema at %s", ", ".join(revisions) or "no revision")
            async with contextlib.AsyncExitStack() as stack:
                if hub is not None:
                    await stack.enter_async_context(hub.lifespan())
                async with asyncio.TaskGroup() as tasks:
                    beat = tasks.create_task(presence.run()) if presence is not None else None
                    dispatcher = tasks.create_task(outbox.run())
                    try:
                        yield
                    finally:
                        dispatcher.cancel()
                        if beat is not None:
                            beat.cancel()
        finally:
            await outbox.aclose()  # the waiting "sent" marks, and the outbox's leases
            await database.aclose()
            if valkey is not None:
                await valkey.aclose()

    limiters = rate_limiters(settings)
    metrics.watch_rate_limits(limiters, hub.endpoint if hub is not None else None)
    # What applies to hub requests as well (`PlatformApp` serves those with only these).
    shared_middleware = [
        Middleware(CredentialedCorsMiddleware, origin_allowed=origin_allowed),
        # inside CORS, so a browser can read the 413 and the 429s
        *(
            [Middleware(ConnectRateMiddleware, limiter=limiters["negotiate"], hub_paths=HUB_PATHS)]
            if "negotiate" in limiters
            else []
        ),
    ]
    middleware = [
        *shared_middleware,
        Middleware(
            BodyLimitMiddleware,
            limit=settings.http.max_request_body_size,
            prefixes=("/api/",),
            exempt=HUB_PATHS,
        ),
        Middleware(PrincipalMiddleware, authenticator=authenticator, on_principal=directory.seen),
        # inside the principal middleware: REST requests count per user
        *(
            [
                Middleware(
                    RestRateMiddleware,
                    limiter=limiters["rest"],
                    prefixes=("/api/",),
                    exempt=HUB_PATHS,
                )
            ]
            if "rest" in limiters
            else []
        ),
    ]
    app = PlatformApp(
        title="hero",
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        redirect_slashes=False,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    if hub is not None and hub_routes:
        app.serve_hub_first(hub_routes, wrapped(hub, shared_middleware))
    app.include_router(chat_router(chat))
    app.include_router(
        notifications_router(notification_service, hub.context if hub is not None else None)
    )
    install_problem_handlers(app)
    app.state.platform = platform
    app.state.hubs = (hub,) if hub is not None else ()
    return app


def install_problem_handlers(app: FastAPI) -> None:
    """Every error the REST API returns is `application/problem+json` (one `type` scheme),
    and `/openapi.json` says so (`document_problems`)."""

    async def on_problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        extra: dict[str, Any] = {"field": exc.field} if exc.field else {}
        return problem(exc.status, exc.title, exc.detail, **extra)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        first = errors[0] if errors else {}
        return problem(
            400,
            "Bad Request",
            str(first.get("msg", "Invalid request.")),
            field=_failing_field(first),
            errors=[
                {
                    "field": ".".join(str(p) for p in e.get("loc", ())),
                    "message": str(e.get("msg", "")),
                }
                for e in errors
            ],
        )

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(exc.headers or {})
        extra: dict[str, Any] = {}
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(app, request.scope)
        elif exc.status_code == 400:
            # FastAPI's own 400: a body it cannot read (not UTF-8, a broken form).
            extra["field"] = "body"
        return problem(
            exc.status_code,
            _TITLES.get(exc.status_code, "Error"),
            str(exc.detail),
            headers=headers,
            **extra,
        )

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    install_database_unavailable_handler(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


_LOCATIONS = {"body", "query", "path", "header", "cookie"}


def _failing_field(error: Mapping[str, Any]) -> str:
    """The input a validation error is about, as the client spells it: `name`,
    `userIds.3`, or the location itself (`body`) when the whole of it is missing or is not
    JSON; `loc` is FastAPI's (location, name, ...), with a byte offset for bad JSON."""
    location = [str(part) for part in error.get("loc", ())]
    if error.get("type") == "json_invalid":
        return location[0] if location else "body"
    if len(location) > 1 and location[0] in _LOCATIONS:
        location = location[1:]
    return ".".join(location) or "body"


def allowed_methods(app: FastAPI, scope: Any) -> str:
    """The `Allow` of a 405: the methods of every route at the request's path. Starlette
    names only the first matching route's, FastAPI makes one route per method and keeps
    included routers behind one opaque route, so the documented paths are matched too."""
    methods: set[str] = set()
    for route in app.router.routes:
        route_methods = getattr(route, "methods", None)
        if route_methods and route.matches(scope)[0] is not Match.NONE:
            methods.update(route_methods)
    path = scope.get("path", "")
    for template, item in app.openapi().get("paths", {}).items():
        if _path_pattern(template).match(path):
            methods.update(method.upper() for method in item if method in _HTTP_METHODS)
    return ", ".join(sorted(methods))


_HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@functools.lru_cache(maxsize=256)
def _path_pattern(template: str) -> re.Pattern[str]:
    return compile_path(template)[0]


_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    429: "Too Many Requests",
}
