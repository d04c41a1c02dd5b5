"""`RelayBus` on Valkey pub/sub: every instance listens on its own channel.

`{prefix}relay:{name}` carries the relay messages addressed to instance `name`; PUBLISH's
receiver count says whether the addressee listens, and `PUBSUB NUMSUB` whether it still does.
The reader reconnects and re-subscribes with capped, jittered back-off after any failure.
Its loop repeats the backplane's single-server reader (`SingleNodeSubscriptions._read_forever`
in lifetime/subscriptions.py) almost line for line; the cluster bus (sharded_relay.py) reuses
the backplane's `ShardedSubscriber` instead.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
import secrets
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("hero.realtime.relay")

_MAX_BACKOFF = 1.0


class ValkeyRelayBus:
    """Point-to-point messages between instances over one Valkey server."""

    def __init__(
        self,
        client: Any,
        *,
        key_prefix: str = "hero:",
        name: str | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        self._client = client
        self._prefix = f"{key_prefix}relay:"
        self._name = name or base64.urlsafe_b64encode(secrets.token_bytes(9)).decode()
        self._poll_interval = poll_interval
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self._name

    def _channel(self, instance: str) -> str:
        return f"{self._prefix}{instance}"

    async def start(self, deliver: Callable[[bytes], None]) -> None:
        if self._pubsub is not None:
            return
        self._pubsub = self._client.pubsub()
        await self._pubsub.subscribe(self._channel(self._name))
        self._reader = asyncio.get_running_loop().create_task(
            self._read_forever(deliver), name="hero-relay-reader"
        )

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
            self._pubsub = None

    async def publish(self, instance: str, data: bytes) -> int:
        return int(await self._client.publish(self._channel(instance), data))

    async def alive(self, instance: str) -> bool:
        try:
            counts = await self._client.pubsub_numsub(self._channel(instance))
        except Exception:
            return True  # cannot tell: do not declare a live owner dead
        return any(int(count) > 0 for _, count in counts)

    async def _read_forever(self, deliver: Callable[[bytes], None]) -> None:
        backoff = 0.1
        while True:
            try:
                message = await self._pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=self._poll_interval
                )
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if backoff == 0.1:
                    logger.warning("relay read failed (%s); retrying", exc)
                await asyncio.sleep(backoff * (0.5 + random.random() / 2))
                backoff = min(backoff * 2, _MAX_BACKOFF)
                continue
            if message is not None and message.get("type") == "message":
                deliver(bytes(message["data"]))
