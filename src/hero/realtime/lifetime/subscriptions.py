"""How the Valkey backplane subscribes and publishes: one small interface, two variants.

- `SingleNodeSubscriptions`: classic pub/sub on one server (``SUBSCRIBE``/``PUBLISH``, a
  pub/sub connection from the client's pool, sends to several channels in one MULTI/EXEC).
  ``PUBLISH`` answers how many subscribers received the message, and with one server that
  is exact: `counts_receivers` is true.
- `ShardedSubscriptions`: sharded pub/sub on a Valkey Cluster (``SSUBSCRIBE``/``SPUBLISH``,
  see sharded.py). A publish's count covers one node only, so `counts_receivers` is false
  and the manager asks an `OwnerRegistry` instead; a send to several channels goes out one
  channel at a time, since the channels live on different shards.

Both call `on_message(channel, data)` for every message and keep the `SubscriberLink` up to
date; `subscribe` returns once the server confirmed the subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence
from typing import Any

from hero.realtime.lifetime.link import MAX_RETRY_BACKOFF, BackplaneError, SubscriberLink
from hero.realtime.lifetime.sharded import ShardedSubscriber

logger = logging.getLogger("hero.realtime.backplane")

__all__ = ["ShardedSubscriptions", "SingleNodeSubscriptions", "Subscriptions"]

OnMessage = Callable[[str, bytes], None]


class Subscriptions(ABC):
    """Subscribe, unsubscribe and publish; messages go to the `on_message` callback."""

    counts_receivers: bool
    """Whether `publish` answers the number of instances that received the message."""

    @abstractmethod
    async def start(self, channels: Sequence[str]) -> None:
        """Subscribe `channels` (waiting for confirmation) and start reading."""

    @abstractmethod
    async def stop(self) -> None: ...

    @abstractmethod
    async def subscribe(self, channel: str) -> None:
        """Returns once subscribed; raises BackplaneError when that fails or takes too long."""

    @abstractmethod
    async def unsubscribe(self, channel: str) -> None: ...

    @abstractmethod
    async def publish(self, channel: str, data: bytes) -> int:
        """Publish; the answer is a receiver count only where `counts_receivers`."""

    @abstractmethod
    async def publish_many(self, channels: Collection[str], data: bytes) -> None:
        """The same message to several channels (two or more)."""


class SingleNodeSubscriptions(Subscriptions):
    """Classic pub/sub on one server through a `valkey.asyncio.Valkey` client."""

    counts_receivers = True

    def __init__(
        self,
        client: Any,
        on_message: OnMessage,
        link: SubscriberLink,
        *,
        confirm_timeout: float,
        poll_interval: float,
    ) -> None:
        self._client = client
        self._on_message = on_message
        self._link = link
        self._confirm_timeout = confirm_timeout
        self._poll_interval = poll_interval
        self._pubsub: Any = None
        self._confirmations: dict[bytes, list[asyncio.Future[None]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def start(self, channels: Sequence[str]) -> None:
        self._pubsub = self._client.pubsub()
        waits = [self._expect_confirmation(channel) for channel in channels]
        await self._pubsub.subscribe(*channels)
        self._reader = asyncio.get_running_loop().create_task(
            self._read_forever(), name="hero-backplane-reader"
        )
        await self._confirmed(waits)

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
            self._reader = None
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
            self._pubsub = None

    def _expect_confirmation(self, channel: str) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirmations.setdefault(channel.encode(), []).append(future)
        return future

    async def _confirmed(self, futures: Sequence[asyncio.Future[None]]) -> None:
        try:
            async with asyncio.timeout(self._confirm_timeout):
                await asyncio.gather(*futures)
        except TimeoutError:
            raise BackplaneError("Valkey did not confirm a subscription in time.") from None

    async def subscribe(self, channel: str) -> None:
        if self._pubsub is None:
            raise BackplaneError("The Valkey lifetime manager was not started.")
        # Registered before SUBSCRIBE is sent: the reader may see the confirmation first.
        waiting = self._expect_confirmation(channel)
        try:
            await self._pubsub.subscribe(channel)
            await self._confirmed([waiting])
        except BaseException:
            pending = self._confirmations.get(channel.encode(), [])
            if waiting in pending:
                pending.remove(waiting)
            raise

    async def unsubscribe(self, channel: str) -> None:
        if self._pubsub is not None:
            await self._pubsub.unsubscribe(channel)

    async def publish(self, channel: str, data: bytes) -> int:
        return int(await self._client.publish(channel, data))

    async def publish_many(self, channels: Collection[str], data: bytes) -> None:
        """One MULTI/EXEC: every channel gets the message, or none does."""
        async with self._client.pipeline(transaction=True) as pipe:
            for channel in channels:
                pipe.publish(channel, data)
            await pipe.execute()

    async def _read_forever(self) -> None:
        backoff = 0.1
        while True:
            try:
                message = await self._pubsub.get_message(
                    ignore_subscribe_messages=False, timeout=self._poll_interval
                )
                backoff = 0.1
                self._link.restored()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if backoff == 0.1:
                    logger.warning("backplane read failed (%s); retrying", exc)
                self._link.lost()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_RETRY_BACKOFF)
                continue
            if message is None:
                continue
            kind = message.get("type")
            if kind == "subscribe":
                for future in self._confirmations.pop(message["channel"], []):
                    if not future.done():
                        future.set_result(None)
            elif kind == "message":
                try:
                    self._on_message(message["channel"].decode(), message["data"])
                except Exception:
                    logger.exception("bad backplane message on %r", message.get("channel"))


class ShardedSubscriptions(Subscriptions):
    """Sharded pub/sub on a `valkey.asyncio.cluster.ValkeyCluster` client (sharded.py)."""

    counts_receivers = False

    def __init__(
        self,
        client: Any,
        on_message: OnMessage,
        link: SubscriberLink,
        *,
        confirm_timeout: float,
        poll_interval: float,
    ) -> None:
        self._subscriber = ShardedSubscriber(
            client,
            self._deliver,
            link,
            confirm_timeout=confirm_timeout,
            poll_interval=poll_interval,
        )
        self._on_message = on_message

    def _deliver(self, channel: str, data: bytes) -> None:
        self._on_message(channel, data)

    @property
    def subscriber(self) -> ShardedSubscriber:
        return self._subscriber

    async def start(self, channels: Sequence[str]) -> None:
        try:
            await self._subscriber.start(channels)
        except BaseException:
            await self._subscriber.stop()
            raise

    async def stop(self) -> None:
        await self._subscriber.stop()

    async def subscribe(self, channel: str) -> None:
        await self._subscriber.subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        await self._subscriber.unsubscribe(channel)

    async def publish(self, channel: str, data: bytes) -> int:
        return await self._subscriber.publish(channel, data)

    async def publish_many(self, channels: Collection[str], data: bytes) -> None:
        # One shard per channel: no transaction spans them, so this is all or nothing per
        # channel only (a failure part-way leaves the earlier channels delivered).
        for channel in channels:
            await self._subscriber.publish(channel, data)
