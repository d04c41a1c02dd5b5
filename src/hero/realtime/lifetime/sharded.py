"""Sharded pub/sub on a Valkey Cluster: SSUBSCRIBE each channel on the primary owning its slot.

In a cluster, a classic ``PUBLISH`` is broadcast to every node over the cluster bus. Sharded
pub/sub (https://valkey.io/topics/pubsub/, "Sharded Pub/Sub") keeps a message inside the
shard that owns its channel's hash slot: ``SPUBLISH`` goes to that shard and only clients
that ``SSUBSCRIBE``d there receive it. So:

- `ShardedSubscriber` keeps one subscribed connection per primary (opened when a channel of
  that primary is first wanted) and sends each ``SSUBSCRIBE`` to the node that owns the
  channel's slot in the cluster client's slot map. ``SPUBLISH`` goes through the cluster
  client, which routes it by slot (and follows ``MOVED`` itself).
- When a slot moves, the node that lost it ends the subscriptions of its channels with an
  unsolicited ``sunsubscribe``; an ``SSUBSCRIBE`` sent to a node that no longer owns the slot
  is answered with ``MOVED``; a node connection can fail. Each of these wakes the supervisor,
  which refreshes the slot map and subscribes every wanted channel where it now belongs,
  with capped, jittered backoff while that fails. While a wanted channel is not subscribed
  where it belongs, the `SubscriberLink` is down, so sends are refused (see valkey.py).
- `OwnerRegistry`: in a cluster, the count ``SPUBLISH`` answers is the subscribers of one
  node only, so it cannot say whether a connection exists or how many instances received a
  command. Instead each instance records, under a key in the channel's own slot, that it
  serves a connection or user channel: a sorted set of server names scored with an expiry
  on the server's clock, refreshed by a heartbeat and removed on unsubscribe. An instance
  that dies stops refreshing and drops out after ``ttl``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Callable, Collection, Iterable
from typing import Any

from valkey.exceptions import MovedError, ResponseError

from hero.realtime.lifetime.link import MAX_RETRY_BACKOFF, BackplaneError, SubscriberLink

logger = logging.getLogger("hero.realtime.backplane")

__all__ = ["OwnerRegistry", "ShardedSubscriber"]


class _Moved(Exception):
    """An SSUBSCRIBE reached a node that does not own the channel's slot (any more)."""


class _NodeConnection:
    """One subscribed connection to one primary, with its reader task.

    Replies to ``SSUBSCRIBE`` come back in command order, so confirmations and errors are
    matched to the oldest outstanding request. Once the connection failed it is never used
    again (valkey-py would silently reconnect it, without the subscriptions).
    """

    def __init__(
        self,
        name: str,
        connection: Any,
        owner: ShardedSubscriber,
        poll_interval: float,
    ) -> None:
        self.name = name
        self.channels: set[str] = set()  # confirmed subscriptions
        self.failed = False
        self._connection = connection
        self._owner = owner
        self._poll = poll_interval
        self._outstanding: deque[tuple[str, asyncio.Future[None]]] = deque()
        self._leaving: set[str] = set()
        self._task = asyncio.get_running_loop().create_task(
            self._read_forever(), name=f"hero-backplane-shard-{name}"
        )

    async def subscribe(self, channels: Collection[str]) -> list[asyncio.Future[None]]:
        """Send one SSUBSCRIBE per channel; the futures resolve on confirmation."""
        if self.failed:
            raise BackplaneError(f"The connection to {self.name} failed.")
        loop = asyncio.get_running_loop()
        futures = []
        for channel in channels:
            future: asyncio.Future[None] = loop.create_future()
            self._outstanding.append((channel, future))
            futures.append(future)
        commands = [("SSUBSCRIBE", channel) for channel in channels]
        try:
            await self._connection.send_packed_command(
                self._connection.pack_commands(commands), check_health=False
            )
        except Exception as exc:
            self._fail(exc)
            raise BackplaneError(f"Subscribing on {self.name} failed: {exc}") from exc
        return futures

    async def unsubscribe(self, channel: str) -> None:
        self.channels.discard(channel)
        if self.failed:
            return
        self._leaving.add(channel)
        try:
            await self._connection.send_command("SUNSUBSCRIBE", channel, check_health=False)
        except Exception as exc:
            self._fail(exc)

    async def close(self) -> None:
        self.failed = True
        self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task
        with contextlib.suppress(Exception):
            await self._connection.disconnect()
        self._fail_outstanding(BackplaneError("The backplane stopped."))

    def _fail_outstanding(self, exc: Exception) -> None:
        while self._outstanding:
            _, future = self._outstanding.popleft()
            if not future.done():
                future.set_exception(exc)

    def _fail(self, exc: BaseException) -> None:
        if self.failed:
            return
        self.failed = True
        self._fail_outstanding(BackplaneError(f"The connection to {self.name} failed: {exc}"))
        self._owner.node_failed(self, exc)
        if asyncio.current_task() is not self._task:
            self._task.cancel()

    def _answered(self, exc: Exception | None, channel: bytes | None = None) -> None:
        if not self._outstanding:
            return
        name, future = self._outstanding.popleft()
        if channel is not None and name.encode() != channel:
            # Not the reply we expected first: find it (never seen, but stay correct).
            self._outstanding.appendleft((name, future))
            for item in list(self._outstanding):
                if item[0].encode() == channel:
                    self._outstanding.remove(item)
                    name, future = item
                    break
            else:
                return
        if exc is None:
            self.channels.add(name)
        if not future.done():
            if exc is None:
                future.set_result(None)
            else:
                future.set_exception(exc)

    async def _read_forever(self) -> None:
        idle = 0
        while True:
            try:
                response = await self._connection.read_response(timeout=self._poll)
            except MovedError as exc:
                self._answered(_Moved(str(exc)))
                self._owner.resync()
                continue
            except ResponseError as exc:
                self._answered(BackplaneError(f"Valkey refused a subscription: {exc}"))
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._fail(exc)
                return
            if response is None:
                # Quiet: a PING proves the node is alive (a subscribed connection answers
                # with a `pong` push); three quiet polls without any answer mean it is not.
                idle += 1
                if idle > 3:
                    self._fail(TimeoutError("the node stopped answering"))
                    return
                try:
                    await self._connection.send_command("PING", check_health=False)
                except Exception as exc:
                    self._fail(exc)
                    return
                continue
            idle = 0
            self._dispatch(response)

    def _dispatch(self, response: Any) -> None:
        if not isinstance(response, list) or not response:
            return
        kind = response[0]
        if kind == b"smessage":
            self._owner.deliver(response[1], response[2])
        elif kind == b"ssubscribe":
            self._answered(None, response[1])
        elif kind == b"sunsubscribe":
            channel = response[1].decode()
            if channel in self._leaving:
                self._leaving.discard(channel)
            else:
                # The node gave the slot away (https://valkey.io/commands/ssubscribe/).
                self.channels.discard(channel)
                self._owner.lost_channel(channel)


class ShardedSubscriber:
    """Sharded subscriptions over a ``valkey.asyncio.cluster.ValkeyCluster`` (module doc).

    `on_message(channel, data)` runs on a reader task for every ``smessage``. `subscribe`
    returns once the owning node confirmed; `unsubscribe` does not wait.
    """

    def __init__(
        self,
        client: Any,
        on_message: Callable[[str, bytes], None],
        link: SubscriberLink,
        *,
        confirm_timeout: float,
        poll_interval: float,
    ) -> None:
        self._client = client
        self._on_message = on_message
        self._link = link
        self._confirm_timeout = confirm_timeout
        self._poll = poll_interval
        self._wanted: set[str] = set()
        self._nodes: dict[str, _NodeConnection] = {}
        self._placed: dict[str, str] = {}  # channel -> node name it was sent to
        self._lock = asyncio.Lock()
        self._resync = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, channels: Iterable[str]) -> None:
        try:
            await self._client.initialize()
        except Exception as exc:
            raise BackplaneError(f"The Valkey Cluster is unreachable: {exc}") from exc
        self._supervisor = asyncio.get_running_loop().create_task(
            self._supervise(), name="hero-backplane-supervisor"
        )
        wanted = list(channels)
        self._wanted.update(wanted)
        async with self._lock:
            await self._place(wanted)

    async def stop(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(BaseException):
                await self._supervisor
            self._supervisor = None
        for node in list(self._nodes.values()):
            await node.close()
        self._nodes.clear()
        self._placed.clear()
        self._wanted.clear()

    # -- subscriptions ----------------------------------------------------------------------

    async def subscribe(self, channel: str) -> None:
        self._wanted.add(channel)
        try:
            async with self._lock:
                await self._place([channel])
        except BaseException:
            self._wanted.discard(channel)
            raise

    async def unsubscribe(self, channel: str) -> None:
        self._wanted.discard(channel)
        async with self._lock:
            name = self._placed.pop(channel, None)
            node = self._nodes.get(name) if name is not None else None
            if node is not None:
                await node.unsubscribe(channel)

    def subscribed_on(self) -> dict[str, set[str]]:
        """Confirmed channels per node name (for tests and diagnostics)."""
        return {name: set(node.channels) for name, node in self._nodes.items()}

    async def publish(self, channel: str, data: bytes) -> int:
        """``SPUBLISH``: the cluster client sends it to the shard owning the channel."""
        return int(await self._client.execute_command("SPUBLISH", channel, data))

    # -- placement --------------------------------------------------------------------------

    async def _node(self, node: Any) -> _NodeConnection:
        current = self._nodes.get(node.name)
        if current is not None and not current.failed:
            return current
        options = dict(node.connection_kwargs)
        options["health_check_interval"] = 0  # the reader pings; no PING before commands
        connection = node.connection_class(**options)
        try:
            await connection.connect()
        except Exception as exc:
            raise BackplaneError(f"Cannot reach cluster node {node.name}: {exc}") from exc
        created = _NodeConnection(node.name, connection, self, self._poll)
        self._nodes[node.name] = created
        return created

    async def _place(self, channels: Collection[str], attempts: int = 3) -> None:
        """Subscribe each channel on the node that owns its slot now (lock held)."""
        todo = [c for c in channels if c in self._wanted]
        for attempt in range(attempts):
            by_node: dict[str, tuple[Any, list[str]]] = {}
            for channel in todo:
                node = self._client.get_node_from_key(channel)
                placed = self._placed.get(channel)
                live = self._nodes.get(node.name)
                if placed == node.name and live is not None and channel in live.channels:
                    continue
                if placed is not None and placed != node.name:
                    old = self._nodes.get(placed)
                    if old is not None:
                        await old.unsubscribe(channel)
                by_node.setdefault(node.name, (node, []))[1].append(channel)
            if not by_node:
                return
            waits: list[tuple[str, asyncio.Future[None]]] = []
            for node, names in by_node.values():
                connection = await self._node(node)
                for channel in names:
                    self._placed[channel] = node.name
                futures = await connection.subscribe(names)
                waits += zip(names, futures, strict=True)
            moved: list[str] = []
            try:
                async with asyncio.timeout(self._confirm_timeout):
                    for channel, future in waits:
                        try:
                            await future
                        except _Moved:
                            moved.append(channel)
            except TimeoutError:
                raise BackplaneError("Valkey did not confirm a subscription in time.") from None
            if not moved:
                return
            for channel in moved:
                self._placed.pop(channel, None)
            todo = moved
            if attempt < attempts - 1:
                await self._refresh()
        raise BackplaneError("The Valkey Cluster kept redirecting a subscription (MOVED).")

    async def _refresh(self) -> None:
        """Reload the slot map (``CLUSTER SHARDS``/``SLOTS`` through the cluster client)."""
        try:
            await self._client.nodes_manager.initialize()
        except Exception as exc:
            raise BackplaneError(f"Cannot read the cluster's slot map: {exc}") from exc

    # -- events from the node readers --------------------------------------------------------

    def deliver(self, channel: bytes, data: bytes) -> None:
        try:
            self._on_message(channel.decode(), data)
        except Exception:
            logger.exception("bad backplane message on %r", channel)

    def lost_channel(self, channel: str) -> None:
        self._placed.pop(channel, None)
        if channel in self._wanted:
            self._link.lost()  # until the supervisor subscribed it where it now belongs
            self.resync()

    def node_failed(self, node: _NodeConnection, exc: BaseException) -> None:
        if self._nodes.get(node.name) is node:
            del self._nodes[node.name]
        affected = [c for c, name in self._placed.items() if name == node.name]
        for channel in affected:
            del self._placed[channel]
        if affected:
            logger.warning("backplane connection to %s failed (%s); resubscribing", node.name, exc)
            self._link.lost()
            self.resync()

    def resync(self) -> None:
        self._resync.set()

    async def _supervise(self) -> None:
        """Resubscribe whatever is not where it belongs, until it all is (capped backoff)."""
        backoff = 0.1
        while True:
            await self._resync.wait()
            self._resync.clear()
            try:
                await self._refresh()
                async with self._lock:
                    await self._place(list(self._wanted))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._link.lost()
                if backoff == 0.1:
                    logger.warning("backplane resubscription failed (%s); retrying", exc)
                # Jitter spreads the instances' retries; the cap keeps every instance
                # retrying at least every MAX_RETRY_BACKOFF seconds (see SubscriberLink).
                await asyncio.sleep(backoff * random.uniform(0.5, 1.0))
                backoff = min(backoff * 2, MAX_RETRY_BACKOFF)
                self._resync.set()
                continue
            backoff = 0.1
            if not self._resync.is_set():
                self._link.restored()


_REGISTER = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl * 2)
return 1
"""

_OWNERS = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], now + 1, '+inf')
"""


class OwnerRegistry:
    """Which instances serve a connection or user channel, on the cluster (module doc).

    The key is ``{channel}:owners``; Valkey keeps keys and channels apart, and the key's hash
    slot is computed like the channel's, so the entry lives in the channel's shard.
    """

    def __init__(self, client: Any, server_name: str, ttl: float) -> None:
        self._client = client
        self._server = server_name
        self._ttl_ms = max(1, round(ttl * 1000))
        self._register = client.register_script(_REGISTER)
        self._owners = client.register_script(_OWNERS)

    @staticmethod
    def key(channel: str) -> str:
        return f"{channel}:owners"

    async def add(self, channel: str) -> None:
        await self._register(keys=[self.key(channel)], args=[self._server, self._ttl_ms])

    async def remove(self, channel: str) -> None:
        await self._client.zrem(self.key(channel), self._server)

    async def owners(self, channel: str) -> set[str]:
        names = await self._owners(keys=[self.key(channel)])
        return {n.decode() if isinstance(n, bytes) else str(n) for n in names}

    async def refresh(self, channels: Collection[str], batch: int = 64) -> None:
        """Extend this instance's entries (the heartbeat), a batch of calls at a time."""
        pending = list(channels)
        for start in range(0, len(pending), batch):
            await asyncio.gather(*(self.add(c) for c in pending[start : start + batch]))
