"""Presence storage: connection entries with expiry, correct across instances.

Each connection is a :class:`PresenceEntry` with an expiry, refreshed by its instance's
heartbeat. A user is online while at least one unexpired entry exists. An instance that
crashes stops refreshing; its entries expire and :meth:`PresenceStore.sweep` on any surviving
instance removes them and reports the user offline, so nobody stays online forever. A
refresh re-creates an entry that is missing (the server restarted or was flushed, or the
heartbeat came late and a sweep removed it) and reports the users that it brought back online,
so presence recovers by itself.

:class:`MemoryPresenceStore` serves a single instance; :class:`ValkeyPresenceStore` shares the
entries through Valkey, with expiries taken from the server's clock. Announcing the changes
(``PresenceChanged``) is the platform's job: see :mod:`hero.platform.presence`.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from hero.caching.valkey import ValkeyClient, _translate_errors, register_script

__all__ = ["MemoryPresenceStore", "PresenceEntry", "PresenceStore", "ValkeyPresenceStore"]


@dataclass(frozen=True, slots=True)
class PresenceEntry:
    tenant_id: str
    user_id: str
    connection_id: str


class PresenceStore(ABC):
    """Connection entries with expiry. Every method is atomic with respect to the others."""

    @abstractmethod
    async def add(self, entry: PresenceEntry, ttl: float) -> bool:
        """Add a live entry. True when the user had no live entry before (went online)."""

    @abstractmethod
    async def remove(self, entry: PresenceEntry) -> bool:
        """Remove an entry. True when it existed and the user has no live entry left."""

    @abstractmethod
    async def refresh(self, entries: Iterable[PresenceEntry], ttl: float) -> list[tuple[str, str]]:
        """Set each entry's expiry to now + ``ttl``, re-adding entries that are gone (heartbeat).

        Returns (tenant, user), once each in first-seen order, for the users that had no live
        entry before this call and have one now (they went online again).
        """

    @abstractmethod
    async def sweep(self) -> list[tuple[str, str]]:
        """Remove expired entries; return (tenant, user) for users that went offline."""

    @abstractmethod
    async def online(self, tenant_id: str, user_ids: Iterable[str]) -> dict[str, bool]: ...


class MemoryPresenceStore(PresenceStore):
    """Single-instance store; `clock` is injectable for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._users: dict[tuple[str, str], dict[str, float]] = {}

    def _live(self, key: tuple[str, str], now: float) -> dict[str, float]:
        entries = self._users.get(key, {})
        return {c: exp for c, exp in entries.items() if exp > now}

    async def add(self, entry: PresenceEntry, ttl: float) -> bool:
        now = self._clock()
        key = (entry.tenant_id, entry.user_id)
        live = self._live(key, now)
        first = not live
        live[entry.connection_id] = now + ttl
        self._users[key] = live
        return first

    async def remove(self, entry: PresenceEntry) -> bool:
        now = self._clock()
        key = (entry.tenant_id, entry.user_id)
        entries = self._users.get(key)
        if entries is None or entries.pop(entry.connection_id, None) is None:
            return False
        live = self._live(key, now)
        if live:
            self._users[key] = live
            return False
        self._users.pop(key, None)
        return True

    async def refresh(self, entries: Iterable[PresenceEntry], ttl: float) -> list[tuple[str, str]]:
        now = self._clock()
        seen: set[tuple[str, str]] = set()
        online: list[tuple[str, str]] = []
        for entry in entries:
            key = (entry.tenant_id, entry.user_id)
            if key not in seen:
                seen.add(key)
                live = self._live(key, now)
                if not live:
                    online.append(key)
                self._users[key] = live
            self._users[key][entry.connection_id] = now + ttl
        return online

    async def sweep(self) -> list[tuple[str, str]]:
        now = self._clock()
        offline: list[tuple[str, str]] = []
        for key in list(self._users):
            live = self._live(key, now)
            if live:
                self._users[key] = live
            else:
                del self._users[key]
                offline.append(key)
        return offline

    async def online(self, tenant_id: str, user_ids: Iterable[str]) -> dict[str, bool]:
        now = self._clock()
        return {u: bool(self._live((tenant_id, u), now)) for u in user_ids}


# Lua keeps each operation atomic and uses the server's clock, so instances with skewed
# clocks agree. Every key carries the {presence} hash tag, so on a Valkey Cluster all of them
# hash to one slot (https://valkey.io/topics/cluster-spec/, "Hash tags"): a script may touch
# several of them and always runs on the one node that owns that slot. Scripts name their
# keys in KEYS, except the sweep, which derives user keys from index members; those keys are
# in the same slot, which a cluster node accepts.
_ADD = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local before = redis.call('ZCARD', KEYS[1])
local exp = now + tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], exp, ARGV[1])
redis.call('ZADD', KEYS[2], exp, ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
if before == 0 then return 1 end
return 0
"""

_REMOVE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if removed == 1 and redis.call('ZCARD', KEYS[1]) == 0 then return 1 end
return 0
"""

# Members of the index are `tenant\nuser\nconn`. The user id is a UUID and the connection id
# is base64url, so neither holds a newline: the members are parsed from the right and the
# tenant is everything before.
_REFRESH = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local ttl = tonumber(ARGV[1])
local exp = now + ttl
local seen = {}
local online = {}
for i = 2, #KEYS do
  local ukey = KEYS[i]
  local member = ARGV[i]
  local tenant, user, conn = string.match(member, '^(.*)\\n([^\\n]*)\\n([^\\n]*)$')
  if not seen[ukey] then
    seen[ukey] = true
    redis.call('ZREMRANGEBYSCORE', ukey, '-inf', now)
    if redis.call('ZCARD', ukey) == 0 then
      table.insert(online, tenant)
      table.insert(online, user)
    end
  end
  redis.call('ZADD', ukey, exp, conn)
  redis.call('PEXPIRE', ukey, ttl * 2)
  redis.call('ZADD', KEYS[1], exp, member)
end
return online
"""

_SWEEP = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 500)
local offline = {}
for _, member in ipairs(expired) do
  if redis.call('ZREM', KEYS[1], member) == 1 then
    local tenant, user, conn = string.match(member, '^(.*)\\n([^\\n]*)\\n([^\\n]*)$')
    local ukey = ARGV[1] .. tenant .. ':' .. user
    redis.call('ZREM', ukey, conn)
    redis.call('ZREMRANGEBYSCORE', ukey, '-inf', now)
    if redis.call('ZCARD', ukey) == 0 then
      table.insert(offline, tenant)
      table.insert(offline, user)
    end
  end
end
return offline
"""

_ONLINE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local counts = {}
for i = 1, #KEYS do
  counts[i] = redis.call('ZCOUNT', KEYS[i], now + 1, '+inf')
end
return counts
"""


REFRESH_BATCH = 500
"""Entries per refresh script call, so one heartbeat of many connections does not block the
server for long."""


class ValkeyPresenceStore(PresenceStore):
    """Cluster-wide store on Valkey: one sorted set per user (connection -> expiry ms) and
    one index of every entry, so any instance can sweep what a crashed one left. Works on a
    single server and on a Valkey Cluster client alike (all keys share one hash slot).

    Failures raise :class:`~hero.caching.CacheUnavailableError` (connection, timeout) or
    :class:`~hero.caching.CacheError`, as :class:`~hero.caching.ValkeyCache` does.
    """

    def __init__(self, client: ValkeyClient, key_prefix: str = "hero:") -> None:
        self._client = client
        self._user_prefix = f"{key_prefix}{{presence}}:u:"
        self._index = f"{key_prefix}{{presence}}:index"
        self._add = register_script(client, _ADD)
        self._remove = register_script(client, _REMOVE)
        self._refresh = register_script(client, _REFRESH)
        self._sweep = register_script(client, _SWEEP)
        self._online = register_script(client, _ONLINE)

    def _user_key(self, tenant_id: str, user_id: str) -> str:
        return f"{self._user_prefix}{tenant_id}:{user_id}"

    @staticmethod
    def _member(entry: PresenceEntry) -> str:
        return f"{entry.tenant_id}\n{entry.user_id}\n{entry.connection_id}"

    @staticmethod
    def _pairs(flat: Any) -> list[tuple[str, str]]:
        values = [v.decode() if isinstance(v, bytes) else str(v) for v in flat]
        return list(zip(values[::2], values[1::2], strict=True))

    async def add(self, entry: PresenceEntry, ttl: float) -> bool:
        key = self._user_key(entry.tenant_id, entry.user_id)
        with _translate_errors:
            result = await self._add(
                keys=[key, self._index],
                args=[entry.connection_id, int(ttl * 1000), self._member(entry)],
            )
        return int(result) == 1

    async def remove(self, entry: PresenceEntry) -> bool:
        key = self._user_key(entry.tenant_id, entry.user_id)
        with _translate_errors:
            result = await self._remove(
                keys=[key, self._index], args=[entry.connection_id, self._member(entry)]
            )
        return int(result) == 1

    async def refresh(self, entries: Iterable[PresenceEntry], ttl: float) -> list[tuple[str, str]]:
        batch = list(entries)
        online: list[tuple[str, str]] = []
        for start in range(0, len(batch), REFRESH_BATCH):
            keys = [self._index]
            args: list[Any] = [int(ttl * 1000)]
            for entry in batch[start : start + REFRESH_BATCH]:
                keys.append(self._user_key(entry.tenant_id, entry.user_id))
                args.append(self._member(entry))
            with _translate_errors:
                flat = await self._refresh(keys=keys, args=args)
            online += self._pairs(flat)
        return online

    async def sweep(self) -> list[tuple[str, str]]:
        with _translate_errors:
            flat = await self._sweep(keys=[self._index], args=[self._user_prefix])
        return self._pairs(flat)

    async def online(self, tenant_id: str, user_ids: Iterable[str]) -> dict[str, bool]:
        ids = list(user_ids)
        if not ids:
            return {}
        with _translate_errors:
            counts = await self._online(keys=[self._user_key(tenant_id, u) for u in ids])
        return {user: int(count) > 0 for user, count in zip(ids, counts, strict=True)}
