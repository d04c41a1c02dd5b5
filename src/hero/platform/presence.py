"""Presence announcements: `PresenceChanged` when a user comes online or goes offline.

:class:`PresenceTracker` records this instance's connections in a
:class:`~hero.caching.PresenceStore` (see :mod:`hero.caching.presence` for the entries, their
expiry and the sweep of entries left by crashed instances), keeps them alive with a heartbeat
and announces the changes the store reports.

`PresenceChanged {userId, online}` goes to `tenant:{tenantId}` on the user's first
connection anywhere and after the last one closes (or expires). The heartbeat re-creates
entries the store lost (a Valkey restart or flush, a heartbeat so late that a sweep removed
them) and announces those users online again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from uuid import UUID

from hero.caching import CacheError, CacheUnavailableError, PresenceEntry, PresenceStore
from hero.conventions import Events, tenant_group
from hero.realtime import BackplaneError, HubContext

logger = logging.getLogger("hero.presence")

REFRESH_BATCH = 500
"""Connections refreshed per store call; connections may close between two batches."""


class PresenceTracker:
    """Announces PresenceChanged and keeps this instance's entries alive.

    `run()` is the heartbeat: it belongs to the app lifespan's task group.

    A refresh re-creates missing entries, so it must never write an entry whose connection
    has closed: each refresh batch takes the entries still in `_local` and runs under
    `_refreshing`, and a closing connection leaves `_local` first and then waits for the
    batch in flight (which may hold its entry) before removing its entry. A batch that starts
    later no longer sees the entry. Removals do not hold the lock during their own store
    call, so closing connections never wait for one another.
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
        self._refreshing = asyncio.Lock()

    async def _announce(self, tenant_id: str, user_id: str, online: bool) -> None:
        await self._hub.clients.group(tenant_group(tenant_id)).send(
            Events.PRESENCE_CHANGED,
            {"userId": user_id, "online": online},
            # a slow client may miss it and asks GET /api/v1/realtime/presence after a resync
            ephemeral=True,
        )

    async def connected(self, tenant_id: str, user_id: UUID, connection_id: str) -> None:
        """Record the connection and announce the user online if this is the first.

        On failure the connection is forgotten (and its entry removed, best effort) before
        the exception propagates: the hub then closes the connection without calling
        `disconnected`, so nothing else would.
        """
        entry = PresenceEntry(tenant_id, str(user_id), connection_id)
        self._local[connection_id] = entry
        try:
            if await self._store.add(entry, self._ttl):
                await self._announce(tenant_id, entry.user_id, True)
        except Exception:
            self._local.pop(connection_id, None)
            try:
                await self._remove(entry)
            except Exception as exc:
                logger.warning(
                    "presence: could not remove the entry of failed connection %s (%s: %s); "
                    "it expires within %g s",
                    connection_id,
                    type(exc).__name__,
                    exc,
                    self._ttl,
                )
            raise
        except BaseException:
            self._local.pop(connection_id, None)
            raise

    async def disconnected(self, connection_id: str) -> None:
        """Forget the connection; announce the user offline if it was the last anywhere.

        A store failure is logged and swallowed, so the hub's cleanup goes on: the entry
        expires within the TTL and a sweep announces the user offline then.
        """
        entry = self._local.pop(connection_id, None)
        if entry is None:
            return
        try:
            went_offline = await self._remove(entry)
        except CacheError as exc:
            logger.warning(
                "presence: could not remove connection %s (%s: %s); it expires within %g s",
                connection_id,
                type(exc).__name__,
                exc,
                self._ttl,
            )
            return
        if went_offline:
            await self._announce(entry.tenant_id, entry.user_id, False)

    async def _remove(self, entry: PresenceEntry) -> bool:
        # The entry has left `_local`; wait out the refresh batch in flight, which may hold
        # it (later batches will not).
        async with self._refreshing:
            pass
        return await self._store.remove(entry)

    async def beat(self) -> None:
        """One heartbeat: refresh our entries, then sweep what expired anywhere."""
        ids = list(self._local)
        for start in range(0, len(ids), REFRESH_BATCH):
            async with self._refreshing:
                batch = [
                    entry
                    for connection_id in ids[start : start + REFRESH_BATCH]
                    if (entry := self._local.get(connection_id)) is not None
                ]
                if not batch:
                    continue
                # Announced inside the lock: a connection closing meanwhile announces its
                # user offline only after this.
                for tenant_id, user_id in await self._store.refresh(batch, self._ttl):
                    await self._announce(tenant_id, user_id, True)
        for tenant_id, user_id in await self._store.sweep():
            await self._announce(tenant_id, user_id, False)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat)
            try:
                await self.beat()
            except (CacheUnavailableError, BackplaneError) as exc:
                # Valkey is unreachable: an outage, not a fault; the next beat re-creates
                # whatever entries the store lost meanwhile.
                logger.warning(
                    "presence heartbeat failed (%s: %s); next one in %g s",
                    type(exc).__name__,
                    exc,
                    self._heartbeat,
                )
            except Exception:
                logger.exception("presence heartbeat failed")

    async def online(self, tenant_id: str, user_ids: Iterable[str]) -> dict[str, bool]:
        return await self._store.online(tenant_id, user_ids)
