"""Presence announcements: `PresenceChanged` when a user comes online or goes offline.

:class:`PresenceTracker` records this instance's connections in a
:class:`~hero.caching.PresenceStore` (see :mod:`hero.caching.presence` for the entries, their
expiry and the sweep of entries left by crashed instances), keeps them alive with a heartbeat
and announces the changes the store reports.

`PresenceChanged {userId, online}` goes to `tenant:{tenantId}` on the user's first
connection anywhere and after the last one closes (or expires).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from uuid import UUID

from hero.caching import PresenceEntry, PresenceStore
from hero.conventions import Events, tenant_group
from hero.realtime import HubContext

logger = logging.getLogger("hero.presence")


class PresenceTracker:
    """Announces PresenceChanged and keeps this instance's entries alive.

    `run()` is the heartbeat: it belongs to the app lifespan's task group.
    """

    def __init__(
        self,
        store: PresenceStore,
        hub: HubContext,
        *,
        ttl: float = 30.0,
        heartbeat: float = 10.0,
    ) -> None:
        self._store = store
        self._hub = hub
        self._ttl = ttl
        self._heartbeat = heartbeat
        self._local: dict[str, PresenceEntry] = {}

    async def _announce(self, tenant_id: str, user_id: str, online: bool) -> None:
        await self._hub.clients.group(tenant_group(tenant_id)).send(
            Events.PRESENCE_CHANGED, {"userId": user_id, "online": online}
        )

    async def connected(self, tenant_id: str, user_id: UUID, connection_id: str) -> None:
        entry = PresenceEntry(tenant_id, str(user_id), connection_id)
        self._local[connection_id] = entry
        if await self._store.add(entry, self._ttl):
            await self._announce(tenant_id, entry.user_id, True)

    async def disconnected(self, connection_id: str) -> None:
        entry = self._local.pop(connection_id, None)
        if entry is not None and await self._store.remove(entry):
            await self._announce(entry.tenant_id, entry.user_id, False)

    async def beat(self) -> None:
        """One heartbeat: refresh our entries, then sweep what expired anywhere."""
        await self._store.refresh(list(self._local.values()), self._ttl)
        for tenant_id, user_id in await self._store.sweep():
            await self._announce(tenant_id, user_id, False)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat)
            try:
                await self.beat()
            except Exception:
                logger.exception("presence heartbeat failed")

    async def online(self, tenant_id: str, user_ids: Iterable[str]) -> dict[str, bool]:
        return await self._store.online(tenant_id, user_ids)
