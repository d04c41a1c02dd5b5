"""The ConformanceHub app of `hero conformance-server` (docs/platform.md §6).

No authentication. It honours the same settings as `hero serve`: with
`CachingOptions:Redis` set, instances on one Valkey form a cluster (a client on one sees
broadcasts and group sends made from another).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette

from hero.caching import create_valkey_client
from hero.platform.app import hub_options, lifetime_manager, relay_for
from hero.platform.settings import Settings
from hero.realtime import HubRoute, HubServer
from hero.realtime.testing import ConformanceHub

CONFORMANCE_PATH = "/conformance"


def create_conformance_app(settings: Settings) -> Starlette:
    redis_url = settings.caching.redis_url()
    valkey = create_valkey_client(redis_url) if redis_url else None
    hub = HubServer(
        ConformanceHub,
        options=hub_options(settings, require_authentication=False),
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
