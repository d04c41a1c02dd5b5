"""A dashboard feed on hero's platform.

AppHub already knows dashboard groups: `JoinGroup("dashboard:{tenantId}:{dashboardId}")`
is allowed for users of that tenant (the `same_tenant_dashboards()` group policy) and
refused with a HubException for anyone else. What the platform does not know is where the
numbers come from. Here a background task reads them (a random walk standing in for your
metrics) and sends a `DashboardTick {dashboardId, value, at}` to each dashboard's group
through `HubContext`, the handle for sending from outside a hub.

The task runs inside the ASGI lifespan, nested in the platform's own: it starts after the
hub is up and stops before the hub closes its connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, FastAPI

from hero.platform.app import PlatformModules, create_app
from hero.platform.hub import same_tenant_dashboards
from hero.platform.settings import Settings
from hero.realtime import HubContext

logger = logging.getLogger("examples.dashboard")

TICK = "DashboardTick"


@dataclass(frozen=True, slots=True)
class Dashboard:
    tenant_id: str
    dashboard_id: str

    @classmethod
    def parse(cls, text: str) -> Dashboard:
        """`TENANT:ID`, as given on the command line. Neither part may contain `:`, the
        group name's separator (the group policy would never match such a name)."""
        tenant, sep, dashboard = text.partition(":")
        if not sep or not tenant or not dashboard or ":" in dashboard:
            raise ValueError(f"expected TENANT:DASHBOARD, got {text!r}")
        return cls(tenant, dashboard)

    @property
    def group(self) -> str:
        """The AppHub group its watchers join with `JoinGroup`."""
        return f"dashboard:{self.tenant_id}:{self.dashboard_id}"


class RandomWalk:
    """Stands in for a real metric source: one value per dashboard, drifting in 0..100."""

    def __init__(self, seed: int | None = None) -> None:
        self._random = random.Random(seed)
        self._values: dict[Dashboard, float] = {}

    def __call__(self, dashboard: Dashboard) -> float:
        value = self._values.get(dashboard, 50.0) + self._random.gauss(0, 5)
        value = min(100.0, max(0.0, value))
        self._values[dashboard] = value
        return round(value, 2)


class DashboardTicker:
    """Sends one tick to every dashboard group each `interval` seconds.

    Sending to a group nobody watches costs next to nothing, so there is no need to track
    who is watching. A failed send (a Valkey backplane that is down, say) is logged and the
    feed goes on: a dashboard shows the latest value, a missed tick is not worth a retry.
    """

    def __init__(
        self,
        context: HubContext,
        dashboards: Sequence[Dashboard],
        interval: float,
        read: Callable[[Dashboard], float] | None = None,
    ) -> None:
        if not interval > 0:
            raise ValueError("interval must be positive")
        self._context = context
        self._dashboards = tuple(dashboards)
        self._interval = interval
        self._read = read or RandomWalk()

    async def tick(self) -> None:
        at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        for dashboard in self._dashboards:
            payload = {
                "dashboardId": dashboard.dashboard_id,
                "value": self._read(dashboard),
                "at": at,
            }
            try:
                await self._context.clients.group(dashboard.group).send(TICK, payload)
            except Exception:
                logger.exception("could not send a tick to %s", dashboard.group)

    async def run(self) -> None:
        """Tick on a fixed schedule (a slow tick does not shift every later one)."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            await self.tick()
            due = max(due + self._interval, loop.time())
            await asyncio.sleep(due - loop.time())

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """`async with ticker.running():` for as long as the feed should run."""
        task = asyncio.create_task(self.run(), name="dashboard-ticker")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def build_app(settings: Settings, dashboards: Sequence[Dashboard], interval: float) -> FastAPI:
    """The platform (AppHub at /realtime/hub, chat, health, ...) plus the dashboard feed."""
    # same_tenant_dashboards() is already the default policy; naming it shows where your
    # own patterns and authorizers would go (GroupPolicy("report:{tenantId}:{id}", ...)).
    modules = PlatformModules(group_policies=[same_tenant_dashboards()])
    app = create_app(settings, modules)
    assert isinstance(app, FastAPI)
    hub = app.state.platform.hub
    if hub is None:
        raise SystemExit("dashboard: Realtime:Enabled is false, so there is no hub to feed")
    ticker = DashboardTicker(hub.context, dashboards, interval)

    @contextlib.asynccontextmanager
    async def feed(_: Any) -> AsyncIterator[None]:
        async with ticker.running():
            yield

    # FastAPI nests an included router's lifespan inside the app's: the platform starts
    # first (database, hub, outbox) and stops last.
    app.include_router(APIRouter(lifespan=feed))
    return app
