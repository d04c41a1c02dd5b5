"""The ConformanceHub app of `hero conformance-server` (docs/platform.md §6).

No authentication. It honours the same settings as `hero serve`: with
`CachingOptions:Redis` set, instances on one Valkey form a cluster (a client on one sees
broadcasts and group sends made from another). One exception: the invocation rate limit is
off unless `Realtime:MaximumInvocationsPerSecond` is set, since client test suites call
this hub as fast as they can.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator

from starlette.applications import Starlette

from hero.caching import create_valkey_client
from hero.platform.app import hub_options, lifetime_manager, relay_for
from hero.platform.settings import Settings
from hero.realtime import HubRoute, HubServer, HubServerOptions
from hero.realtime.testing import ConformanceHub

CONFORMANCE_PATH = "/conformance"


def conformance_options(settings: Settings) -> HubServerOptions:
    """`hub_options` without authentication, and without a rate limit unless one is set."""
    options = hub_options(settings, require_authentication=False)
    if "maximum_invocations_per_second" in settings.realtime.model_fields_set:
        return options
    return dataclasses.replace(
        options, hub=dataclasses.replace(options.hub, maximum_invocations_per_second=0)
    )


def create_conformance_app(settings: Settings) -> Starlette:
    redis_url = settings.caching.redis_url()
    valkey = create_valkey_client(redis_url) if redis_url else None
    hub = HubServer(
        ConformanceHub,
        options=conformance_options(settings),
        lifetime_manager=lifetime_manager(valkey, "ConformanceHub"),
        relay=relay_for(settings, valkey),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            async with hub.lifespan():
                yield
        finally:
            if valkey is not None:
                await valkey.aclose()

    app = Starlette(routes=[HubRoute(CONFORMANCE_PATH, hub)], lifespan=lifespan)
    app.state.hubs = (hub,)
    return app
