"""`RelayBus` on a Valkey Cluster: sharded pub/sub, with liveness from an owner registry.

Each instance listens on its own shard channel `{prefix}relay:{<name>}` (the braces are a
hash tag: the channel and its registry key `{prefix}relay:{<name>}:owners` share one slot, so
one shard holds both). The subscription is a `ShardedSubscriber` (lifetime/sharded.py): an
``SSUBSCRIBE`` on the primary that owns the slot, redone after a slot move, a failover or a
dropped node connection. Messages go out with ``SPUBLISH``.

Whether an instance is alive does not come from receiver counts: in a cluster they cover one
node's clients only, and they read zero while a subscription is being moved. Instead every
instance registers itself under its channel in an `OwnerRegistry` (an entry that expires
`ttl` seconds after its last heartbeat, and is removed at once by `stop`); `alive` reads it.

`publish` answers a receiver count the `Relay` can act on (0 means "answer 404"):

- a positive ``SPUBLISH`` count is a delivery: the addressee is the only subscriber of its
  channel, and it subscribes on the primary that runs the ``SPUBLISH``;
- zero is not taken as death. If the addressee is not registered it is gone: 0. If it is
  registered, its subscription is moving (or it died a moment ago and its entry has not
  expired yet), so the message, which nobody received, is published again with a short
  back-off until it is received or `resubscribe_wait` seconds have passed; then 0 (also
  when the registry cannot be read: the message reached nobody either way).

A relay to a dead owner thus answers 404 within about `resubscribe_wait` seconds, and one
in flight ends once the owner's entry is gone (`stop`, or `ttl` after a crash).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import secrets
from collections.abc import Callable
from typing import Any

from hero.realtime.lifetime.link import SubscriberLink
from hero.realtime.lifetime.sharded import OwnerRegistry, ShardedSubscriber

logger = logging.getLogger("hero.realtime.relay")

__all__ = ["ShardedRelayBus"]

_FIRST_RETRY = 0.02
_MAX_RETRY = 0.25


class ShardedRelayBus:
    """Point-to-point messages between instances over a Valkey Cluster (module doc)."""

    def __init__(
        self,
        client: Any,
        *,
        key_prefix: str = "hero:",
        name: str | None = None,
        ttl: float = 10.0,
        resubscribe_wait: float = 2.0,
        confirm_timeout: float = 5.0,
        poll_interval: float = 1.0,
    ) -> None:
        self._client = client
        self._prefix = f"{key_prefix}relay:"
        self._name = name or base64.urlsafe_b64encode(secrets.token_bytes(9)).decode()
        self._ttl = ttl
        self._resubscribe_wait = resubscribe_wait
        self._confirm_timeout = confirm_timeout
        self._poll_interval = poll_interval
        self._registry = OwnerRegistry(client, self._name, ttl)
        self._subscriber: ShardedSubscriber | None = None
        self._heartbeat: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self._name

    def channel(self, instance: str) -> str:
        """The shard channel that carries the messages addressed to `instance`."""
        return f"{self._prefix}{{{instance}}}"

    async def start(self, deliver: Callable[[bytes], None]) -> None:
        if self._subscriber is not None:
            return
        own = self.channel(self._name)

        def on_message(channel: str, data: bytes) -> None:
            if channel == own:
                deliver(bytes(data))

        # The relay refuses nothing while its subscription moves (publishers retry, see
        # `publish`), so the link's state is not consulted; the subscriber needs one.
        subscriber = ShardedSubscriber(
            self._client,
            on_message,
            SubscriberLink(0.0),
            confirm_timeout=self._confirm_timeout,
            poll_interval=self._poll_interval,
        )
        try:
            await subscriber.start([own])
            await self._registry.add(own)
        except BaseException:
            await subscriber.stop()
            raise
        self._subscriber = subscriber
        self._heartbeat = asyncio.get_running_loop().create_task(
            self._beat_forever(own), name="hero-relay-heartbeat"
        )

    async def stop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        if self._subscriber is not None:
            # Deregistered first: from now on relays to this instance answer 404 at once.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self._confirm_timeout):
                    await self._registry.remove(self.channel(self._name))
            await self._subscriber.stop()
            self._subscriber = None

    async def publish(self, instance: str, data: bytes) -> int:
        channel = self.channel(instance)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._resubscribe_wait
        pause = _FIRST_RETRY
        while True:
            received = int(await self._client.execute_command("SPUBLISH", channel, data))
            if received > 0:
                return received
            if loop.time() >= deadline:
                return 0
            try:
                if not await self._registered(instance):
                    return 0
            except Exception:
                return 0  # nobody received it, and nobody can say it will be: as if gone
            await asyncio.sleep(min(pause, max(0.0, deadline - loop.time())))
            pause = min(pause * 2, _MAX_RETRY)

    async def alive(self, instance: str) -> bool:
        try:
            return await self._registered(instance)
        except Exception:
            return True  # cannot tell: do not declare a live owner dead

    async def _registered(self, instance: str) -> bool:
        return instance in await self._registry.owners(self.channel(instance))

    async def _beat_forever(self, channel: str) -> None:
        """Keep this instance's registry entry alive, a third of its lifetime apart."""
        failing = False
        while True:
            await asyncio.sleep(self._ttl / 3)
            try:
                await self._registry.add(channel)
            except Exception as exc:
                if not failing:
                    logger.warning("relay heartbeat failed (%s); retrying", exc)
                failing = True
                continue
            failing = False
