"""ValkeyLifetimeManager: fan-out across instances over Valkey pub/sub (docs/protocol.md §10).

Every instance keeps its own connections in `LocalConnections` and delivers to them
directly: a local target never touches Valkey, and a broadcast is published once for the
other instances (which ignore their own publications) and then delivered locally. A send that
raises BackplaneError has reached nobody, so retrying it never duplicates.

The pieces: channels.py names the channels, envelope.py is what instances send each other,
subscriptions.py subscribes and publishes (classic pub/sub on one server, or sharded pub/sub
on a Valkey Cluster, sharded.py), link.py holds `BackplaneError` and `SubscriberLink`.

A group move or a client-result request for a connection on another instance must know
whether, and where, that connection exists:

- on one server, it is published to the connection's (or user's) channel: `PUBLISH`
  answering 0 means no instance owns it (the call returns at once, or a client result fails
  with "does not exist"); otherwise a group move waits for an ack from every receiver
  (`ack_timeout`);
- on a Valkey Cluster the publish count is one node's only, so the owners come from an
  `OwnerRegistry` (entries that expire unless refreshed), and the envelope goes to each
  owner's server channel; a group move waits for an ack from each of them by name.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import secrets
from collections.abc import Callable, Collection, Sequence
from typing import Any

from valkey.asyncio.cluster import ValkeyCluster

from hero.realtime.lifetime import envelope as wire
from hero.realtime.lifetime.base import ClientResultError, HubLifetimeManager, LocalConnection
from hero.realtime.lifetime.channels import ChannelKind, ChannelNames
from hero.realtime.lifetime.link import BackplaneError, SubscriberLink
from hero.realtime.lifetime.local import LocalConnections, PendingResults
from hero.realtime.lifetime.sharded import OwnerRegistry
from hero.realtime.lifetime.subscriptions import (
    ShardedSubscriptions,
    SingleNodeSubscriptions,
    Subscriptions,
)
from hero.realtime.protocol import (
    CompletionMessage,
    HubProtocol,
    InvocationMessage,
    JsonHubProtocol,
    MessagePackHubProtocol,
    SerializedMessage,
)

logger = logging.getLogger("hero.realtime.backplane")

__all__ = ["BackplaneError", "SubscriberLink", "ValkeyLifetimeManager"]


class _AckWait:
    """Acks a group move still needs: a count (single server: an ack may arrive before
    PUBLISH told how many received the move) or the owners' names (cluster)."""

    def __init__(self, names: set[str] | None = None) -> None:
        self.future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.names = names
        self.expected = 0
        self.known = names is not None

    def expect(self, receivers: int) -> None:
        self.expected += receivers
        self.known = True
        self._check()

    def acked(self, origin: str) -> None:
        if self.names is not None:
            self.names.discard(origin)
        else:
            self.expected -= 1
        self._check()

    def _check(self) -> None:
        done = not self.names if self.names is not None else self.expected <= 0
        if self.known and done and not self.future.done():
            self.future.set_result(None)


class ValkeyLifetimeManager(HubLifetimeManager):
    """Multi-instance lifetime manager on one Valkey (or Redis) server, or a Valkey Cluster.

    `client` is a `valkey.asyncio.Valkey` (shared with the cache; pub/sub takes its own
    connection from the pool). `start()` must run before the first connection (the
    HubServer's lifespan does it); `stop()` unsubscribes and fails pending operations.
    After an outage, sends are refused for `resubscribe_grace` seconds once this instance's
    subscriber is back (see `SubscriberLink`).

    With a `valkey.asyncio.cluster.ValkeyCluster` client (or `cluster=True`) the channels are
    sharded (`SSUBSCRIBE`/`SPUBLISH`, see sharded.py): a message travels only within the
    shard that owns its channel. There, who serves a connection or user channel comes from
    an `OwnerRegistry` whose entries expire `owner_ttl` seconds after an instance stops
    refreshing them, not from the receiver count of a publish. A send to several channels
    is all or nothing per channel only: the channels live on different shards, which no
    single transaction spans.
    """

    def __init__(
        self,
        client: Any,
        *,
        hub_name: str,
        key_prefix: str = "hero:",
        server_name: str | None = None,
        protocols: Sequence[HubProtocol] | None = None,
        ack_timeout: float = 30.0,
        poll_interval: float = 1.0,
        resubscribe_grace: float = 2.0,
        cluster: bool | None = None,
        owner_ttl: float = 10.0,
    ) -> None:
        self._client = client
        self._sharded = isinstance(client, ValkeyCluster) if cluster is None else cluster
        self._link = SubscriberLink(resubscribe_grace)
        self.server_name = server_name or base64.urlsafe_b64encode(secrets.token_bytes(9)).decode()
        self._channels = ChannelNames(key_prefix, hub_name)
        self._protocols = tuple(protocols or (JsonHubProtocol(), MessagePackHubProtocol()))
        self._ack_timeout = ack_timeout
        self._poll_interval = poll_interval
        self._owner_ttl = owner_ttl
        self._local = LocalConnections()
        self._results = PendingResults(id_prefix=f"{self.server_name}.")
        self._forwarded: dict[str, tuple[str, str]] = {}  # invocation id -> (conn, origin)
        self._acks: dict[int, _AckWait] = {}
        self._ack_counter = 0
        self._subscriptions: Subscriptions | None = None
        self._registry: OwnerRegistry | None = None
        self._subscribed: set[str] = set()
        self._subscription_lock = asyncio.Lock()
        self._control: asyncio.Queue[tuple[str, wire.GroupMove | wire.ClientInvoke]] = (
            asyncio.Queue()
        )
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def sharded(self) -> bool:
        """Whether this manager uses sharded pub/sub on a Valkey Cluster."""
        return self._sharded

    @property
    def subscriptions(self) -> Subscriptions | None:
        """The subscriber while started (for diagnostics and tests)."""
        return self._subscriptions

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._subscriptions is not None:
            return
        variant = ShardedSubscriptions if self._sharded else SingleNodeSubscriptions
        subscriptions = variant(
            self._client,
            self._receive_logged,
            self._link,
            confirm_timeout=self._ack_timeout,
            poll_interval=self._poll_interval,
        )
        fixed = (self._channels.all(), self._channels.server(self.server_name))
        self._subscribed.update(fixed)
        try:
            await subscriptions.start(fixed)
        except BaseException:
            self._subscribed.clear()
            raise
        self._subscriptions = subscriptions
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._control_forever(), name="hero-backplane-control")]
        if not subscriptions.counts_receivers:
            self._registry = OwnerRegistry(self._client, self.server_name, self._owner_ttl)
            self._tasks.append(
                loop.create_task(self._heartbeat_forever(), name="hero-backplane-heartbeat")
            )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for wait in self._acks.values():
            if not wait.future.done():
                wait.future.set_exception(BackplaneError("The backplane stopped."))
        self._acks.clear()
        if self._subscriptions is not None:
            with contextlib.suppress(Exception):
                await self._subscriptions.stop()
            self._subscriptions = None
        self._registry = None
        self._subscribed.clear()

    async def _heartbeat_forever(self) -> None:
        """Keep this instance's registry entries alive (a third of their lifetime apart)."""
        while True:
            await asyncio.sleep(self._owner_ttl / 3)
            registry = self._registry
            if registry is None:
                return
            channels = [c for c in self._subscribed if self._channels.has_owners(c)]
            try:
                await registry.refresh(channels)
            except Exception as exc:
                logger.warning("backplane owner heartbeat failed (%s)", exc)

    # ------------------------------------------------------------------ subscriptions

    async def _sync_subscription(self, channel: str, wanted: Callable[[], bool]) -> None:
        """Subscribe or unsubscribe `channel` so that it matches `wanted()` right now.

        With a registry, an owned channel is registered once subscribed and deregistered
        before it is unsubscribed."""
        subscriptions = self._subscriptions
        if subscriptions is None:
            raise BackplaneError("The Valkey lifetime manager was not started.")
        registry = self._registry if self._channels.has_owners(channel) else None
        async with self._subscription_lock:
            want = wanted()
            if want and channel not in self._subscribed:
                self._subscribed.add(channel)
                try:
                    await subscriptions.subscribe(channel)
                    if registry is not None:
                        await registry.add(channel)
                except BaseException as exc:
                    # Not subscribed after all: a later attempt must try again.
                    self._subscribed.discard(channel)
                    if registry is not None:
                        with contextlib.suppress(Exception):
                            await subscriptions.unsubscribe(channel)
                    if isinstance(exc, Exception) and not isinstance(exc, BackplaneError):
                        raise BackplaneError(f"Subscribing to the backplane failed: {exc}") from exc
                    raise
            elif not want and channel in self._subscribed:
                self._subscribed.discard(channel)
                try:
                    if registry is not None:
                        await registry.remove(channel)
                finally:
                    await subscriptions.unsubscribe(channel)

    def _group_wanted(self, group: str) -> Callable[[], bool]:
        return lambda: group in self._local.groups

    def _user_wanted(self, user_id: str) -> Callable[[], bool]:
        return lambda: user_id in self._local.users

    def _conn_wanted(self, connection_id: str) -> Callable[[], bool]:
        return lambda: connection_id in self._local.connections

    async def _owners(self, channel: str) -> set[str]:
        """The other instances that serve `channel`, per the registry (cluster)."""
        assert self._registry is not None
        self._link.check()
        try:
            owners = await self._registry.owners(channel)
        except Exception as exc:
            raise BackplaneError(f"Reading the backplane registry failed: {exc}") from exc
        owners.discard(self.server_name)
        return owners

    # ------------------------------------------------------------------ publishing

    def _payload(self, message: SerializedMessage) -> dict[str, bytes]:
        return {protocol.name: message.get(protocol) for protocol in self._protocols}

    def _started(self) -> Subscriptions:
        if self._subscriptions is None:
            raise BackplaneError("The Valkey lifetime manager was not started.")
        return self._subscriptions

    async def _publish(self, channel: str, envelope: wire.Envelope) -> int:
        subscriptions = self._started()
        self._link.check()
        try:
            return await subscriptions.publish(channel, wire.encode(envelope))
        except Exception as exc:
            raise BackplaneError(f"Publishing to the backplane failed: {exc}") from exc

    async def _publish_invocation(
        self, channel: str, message: SerializedMessage, excluded: Collection[str] = ()
    ) -> int:
        kind = wire.EphemeralInvoke if message.droppable else wire.Invoke
        envelope = kind(self.server_name, list(excluded), self._payload(message))
        return await self._publish(channel, envelope)

    async def _publish_invocations(
        self, channels: Sequence[str], message: SerializedMessage
    ) -> None:
        """One invocation to several channels: all or none on one server (MULTI/EXEC)."""
        if len(channels) <= 1:
            for channel in channels:
                await self._publish_invocation(channel, message)
            return
        subscriptions = self._started()
        kind = wire.EphemeralInvoke if message.droppable else wire.Invoke
        data = wire.encode(kind(self.server_name, [], self._payload(message)))
        self._link.check()
        try:
            await subscriptions.publish_many(channels, data)
        except Exception as exc:
            raise BackplaneError(f"Publishing to the backplane failed: {exc}") from exc

    # ------------------------------------------------------------------ connections

    async def on_connected(self, connection: LocalConnection) -> None:
        self._local.add(connection)
        cid = connection.connection_id
        await self._sync_subscription(self._channels.connection(cid), self._conn_wanted(cid))
        user = connection.user_id
        if user is not None:
            await self._sync_subscription(self._channels.user(user), self._user_wanted(user))

    async def on_disconnected(self, connection: LocalConnection) -> None:
        cid = connection.connection_id
        emptied, _ = self._local.remove(connection)
        self._results.fail_connection(cid)
        owed = [iid for iid, (owner, _) in self._forwarded.items() if owner == cid]
        for invocation_id in owed:
            _, origin = self._forwarded.pop(invocation_id)
            with contextlib.suppress(BackplaneError):
                await self._publish_result(
                    origin,
                    CompletionMessage.with_error(
                        invocation_id, f"Connection '{cid}' disconnected."
                    ),
                )
        channels = [(self._channels.connection(cid), self._conn_wanted(cid))]
        channels += [(self._channels.group(g), self._group_wanted(g)) for g in emptied]
        user = connection.user_id
        if user is not None:
            channels.append((self._channels.user(user), self._user_wanted(user)))
        for channel, wanted in channels:
            try:
                await self._sync_subscription(channel, wanted)
            except Exception:
                # Cleanup goes on; at worst a channel stays subscribed with nobody local.
                logger.warning("could not unsubscribe %s", channel, exc_info=True)

    # ------------------------------------------------------------------ sends

    # A send publishes first and delivers locally only once Valkey has taken it: a send that
    # raises BackplaneError reached nobody, so whoever retries it (the outbox's dispatcher,
    # on this instance or another) causes no duplicate. Sends to several channels publish in
    # one MULTI/EXEC on one server, all or nothing (per channel on a cluster).

    async def send_all(self, message: InvocationMessage, excluded: Collection[str] = ()) -> None:
        serialized = SerializedMessage(message)
        await self._publish_invocation(self._channels.all(), serialized, excluded)
        self._local.deliver_all(serialized, excluded)

    async def send_connection(self, connection_id: str, message: InvocationMessage) -> None:
        serialized = SerializedMessage(message)
        if connection_id not in self._local.connections:
            await self._publish_invocation(self._channels.connection(connection_id), serialized)
        else:
            self._local.deliver_connection(connection_id, serialized)

    async def send_connections(
        self, connection_ids: Collection[str], message: InvocationMessage
    ) -> None:
        serialized = SerializedMessage(message)
        local = self._local.connections
        remote = [self._channels.connection(c) for c in connection_ids if c not in local]
        await self._publish_invocations(remote, serialized)
        for cid in connection_ids:
            self._local.deliver_connection(cid, serialized)

    async def send_group(
        self, group: str, message: InvocationMessage, excluded: Collection[str] = ()
    ) -> None:
        serialized = SerializedMessage(message)
        await self._publish_invocation(self._channels.group(group), serialized, excluded)
        self._local.deliver_group(group, serialized, excluded)

    async def send_groups(self, groups: Collection[str], message: InvocationMessage) -> None:
        serialized = SerializedMessage(message)
        await self._publish_invocations([self._channels.group(g) for g in groups], serialized)
        for group in groups:
            self._local.deliver_group(group, serialized)

    async def send_user(self, user_id: str, message: InvocationMessage) -> None:
        serialized = SerializedMessage(message)
        await self._publish_invocation(self._channels.user(user_id), serialized)
        self._local.deliver_user(user_id, serialized)

    async def send_users(self, user_ids: Collection[str], message: InvocationMessage) -> None:
        serialized = SerializedMessage(message)
        await self._publish_invocations([self._channels.user(u) for u in user_ids], serialized)
        for user in user_ids:
            self._local.deliver_user(user, serialized)

    # ------------------------------------------------------------------ groups

    async def _apply_group(self, connection_id: str, action: int, group: str) -> None:
        if action == wire.ADD:
            if self._local.add_to_group(connection_id, group) is None:
                return
        else:
            self._local.remove_from_group(connection_id, group)
        await self._sync_subscription(self._channels.group(group), self._group_wanted(group))

    async def _remote_group(
        self, channel: str, action: int, group: str, connection_id: str | None, user_id: str | None
    ) -> None:
        """Send a group move to the instances serving `channel`; wait for each one's ack.

        One server: published to `channel` itself, acks counted against PUBLISH's answer.
        Cluster: sent to each registered owner's server channel, acks matched by name (an
        owner whose connections just left still acks, having moved nothing).
        """
        owners: set[str] | None = None
        if self._registry is not None:
            owners = await self._owners(channel)
            if not owners:
                return
        self._ack_counter += 1
        request = self._ack_counter
        wait = _AckWait(owners)
        self._acks[request] = wait
        try:
            move = wire.GroupMove(self.server_name, request, action, group, connection_id, user_id)
            if owners is not None:
                for owner in sorted(owners):
                    await self._publish(self._channels.server(owner), move)
            else:
                receivers = await self._publish(channel, move)
                if channel in self._subscribed:
                    receivers -= 1  # our own copy is ignored
                if receivers <= 0:
                    return
                wait.expect(receivers)
            try:
                async with asyncio.timeout(self._ack_timeout):
                    await wait.future
            except TimeoutError:
                raise BackplaneError(
                    f"No acknowledgement for the group operation on '{group}' within "
                    f"{self._ack_timeout:g} s."
                ) from None
        finally:
            self._acks.pop(request, None)

    async def add_to_group(self, connection_id: str, group: str) -> None:
        if connection_id in self._local.connections:
            await self._apply_group(connection_id, wire.ADD, group)
        else:
            channel = self._channels.connection(connection_id)
            await self._remote_group(channel, wire.ADD, group, connection_id, None)

    async def remove_from_group(self, connection_id: str, group: str) -> None:
        if connection_id in self._local.connections:
            await self._apply_group(connection_id, wire.REMOVE, group)
        else:
            channel = self._channels.connection(connection_id)
            await self._remote_group(channel, wire.REMOVE, group, connection_id, None)

    def connection_groups(self, connection_id: str) -> Collection[str] | None:
        return self._local.groups_of.get(connection_id, ())

    async def add_user_to_group(self, user_id: str, group: str) -> None:
        for cid in self._local.user_connection_ids(user_id):
            await self._apply_group(cid, wire.ADD, group)
        await self._remote_group(self._channels.user(user_id), wire.ADD, group, None, user_id)

    async def remove_user_from_group(self, user_id: str, group: str) -> None:
        for cid in self._local.user_connection_ids(user_id):
            await self._apply_group(cid, wire.REMOVE, group)
        await self._remote_group(self._channels.user(user_id), wire.REMOVE, group, None, user_id)

    # ------------------------------------------------------------------ client results

    async def invoke_connection(
        self, connection_id: str, target: str, arguments: tuple[Any, ...], timeout: float | None
    ) -> Any:

        async def send(message: InvocationMessage) -> None:
            local = self._local.connections.get(connection_id)
            if local is not None:
                local.write(message)
                return
            assert message.invocation_id is not None
            request = wire.ClientInvoke(
                self.server_name,
                message.invocation_id,
                connection_id,
                self._payload(SerializedMessage(message)),
            )
            channel = self._channels.connection(connection_id)
            if self._registry is not None:
                owners = await self._owners(channel)
                if owners:
                    await self._publish(self._channels.server(min(owners)), request)
                    return
            elif await self._publish(channel, request) > 0:
                return
            raise ClientResultError(f"Connection '{connection_id}' does not exist.")

        return await self._results.invoke(connection_id, target, arguments, timeout, send)

    async def set_connection_result(
        self, connection_id: str, completion: CompletionMessage
    ) -> bool:
        if self._results.complete(connection_id, completion):
            return True
        owed = self._forwarded.get(completion.invocation_id)
        if owed is None or owed[0] != connection_id:
            return False
        del self._forwarded[completion.invocation_id]
        await self._publish_result(owed[1], completion)
        return True

    async def _publish_result(self, origin: str, completion: CompletionMessage) -> None:
        result = wire.Result(
            self.server_name,
            completion.invocation_id,
            completion.error,
            completion.has_result,
            completion.result,
        )
        await self._publish(self._channels.server(origin), result)

    # ------------------------------------------------------------------ receiving

    def _receive_logged(self, channel: str, data: bytes) -> None:
        try:
            self._receive(channel, data)
        except Exception:
            logger.exception("bad backplane message on %r", channel)

    def _receive(self, channel: str, data: bytes) -> None:
        envelope = wire.decode(data)
        if envelope.origin == self.server_name:
            return
        if isinstance(envelope, wire.Invoke):
            droppable = isinstance(envelope, wire.EphemeralInvoke)
            serialized = SerializedMessage(None, envelope.payload, droppable=droppable)
            self._deliver(channel, serialized, envelope.excluded)
        elif isinstance(envelope, wire.Ack):
            wait = self._acks.get(envelope.request)
            if wait is not None:
                wait.acked(envelope.origin)
        elif isinstance(envelope, wire.Result):
            owner = self._results.owner(envelope.invocation_id)
            if owner is not None:
                self._results.complete(
                    owner,
                    CompletionMessage(
                        invocation_id=envelope.invocation_id,
                        error=envelope.error,
                        result=envelope.result,
                        has_result=envelope.has_result,
                    ),
                )
        else:
            self._control.put_nowait((channel, envelope))

    def _deliver(self, channel: str, message: SerializedMessage, excluded: list[str]) -> None:
        parsed = self._channels.parse(channel)
        if parsed is None:
            return
        kind, name = parsed
        if kind is ChannelKind.ALL:
            self._local.deliver_all(message, excluded)
        elif kind is ChannelKind.GROUP:
            self._local.deliver_group(name, message, excluded)
        elif kind is ChannelKind.USER:
            self._local.deliver_user(name, message)
        elif kind is ChannelKind.CONNECTION:
            self._local.deliver_connection(name, message)

    async def _control_forever(self) -> None:
        """Group moves and client-result requests, in arrival order, off the reader task
        (they may subscribe, which needs the reader to see the confirmation)."""
        while True:
            channel, envelope = await self._control.get()
            try:
                if isinstance(envelope, wire.GroupMove):
                    await self._handle_group(envelope)
                else:
                    await self._handle_client_invoke(envelope)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("backplane control message on %r failed", channel)

    async def _handle_group(self, move: wire.GroupMove) -> None:
        if move.connection_id is not None:
            local = move.connection_id in self._local.connections
            targets = [move.connection_id] if local else []
        elif move.user_id is not None:
            targets = self._local.user_connection_ids(move.user_id)
        else:
            targets = []
        for cid in targets:
            await self._apply_group(cid, move.action, move.group)
        ack = wire.Ack(self.server_name, move.request)
        await self._publish(self._channels.server(move.origin), ack)

    async def _handle_client_invoke(self, request: wire.ClientInvoke) -> None:
        connection = self._local.connections.get(request.connection_id)
        if connection is None:
            await self._publish_result(
                request.origin,
                CompletionMessage.with_error(
                    request.invocation_id, f"Connection '{request.connection_id}' disconnected."
                ),
            )
            return
        self._forwarded[request.invocation_id] = (request.connection_id, request.origin)
        connection.write_serialized(SerializedMessage(None, request.payload))
