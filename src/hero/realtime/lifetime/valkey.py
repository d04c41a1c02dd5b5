"""ValkeyLifetimeManager: fan-out across instances over Valkey pub/sub (SIGNALR.md 10).

Every instance keeps its own connections in `LocalConnections` and delivers to them
directly: a local target never touches Valkey, and a broadcast is published once for the
other instances (which ignore their own publications) and then delivered locally. A send that
raises BackplaneError has reached nobody, so retrying it never duplicates.

Channels, under the prefix `P = {key_prefix}signalr:{hub}`:

| channel | carries | subscribed by |
|---|---|---|
| `P:all` | broadcasts | every instance |
| `P:group:{name}` | group sends | instances with a local member |
| `P:user:{id}` | user sends, user group moves | instances with a local connection of the user |
| `P:conn:{id}` | sends, group moves and client-result requests for one connection | its owner |
| `P:server:{name}` | acks and client results for requests this instance made | that instance |

Payloads are MessagePack arrays whose invocation part is the complete framed wire message
for every configured hub protocol (`{"json": bytes, "messagepack": bytes}`), so receivers
write bytes without re-encoding. A group move for a connection on another instance is sent
to that connection's channel: `PUBLISH` answering 0 means no instance owns it (the call
returns at once); otherwise the call waits for the owner's ack (`ack_timeout`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Collection, Sequence
from enum import IntEnum
from typing import Any

import msgspec

from hero.realtime.lifetime.base import ClientResultError, HubLifetimeManager, LocalConnection
from hero.realtime.lifetime.local import LocalConnections, PendingResults
from hero.realtime.protocol import (
    CompletionMessage,
    HubProtocol,
    InvocationMessage,
    JsonHubProtocol,
    MessagePackHubProtocol,
    SerializedMessage,
)

logger = logging.getLogger("hero.realtime.backplane")


class _Kind(IntEnum):
    INVOKE = 1
    GROUP = 2
    ACK = 3
    CLIENT_INVOKE = 4
    RESULT = 5


_ADD = 1
_REMOVE = 2


class BackplaneError(Exception):
    """A backplane operation could not complete (no ack in time, Valkey unreachable)."""


_MAX_READ_BACKOFF = 1.0
"""Longest pause between two attempts of the subscriber to reach Valkey again (seconds)."""


class SubscriberLink:
    """Whether this instance's subscriber is connected to Valkey, and for how long.

    Two states: *down* (the last read failed) and *up since t*. Sends are refused while the
    link is down and for `grace` seconds after it came back: every instance's subscriber
    retries at least every `_MAX_READ_BACKOFF` seconds, so by then the other instances are
    listening again, and a send accepted after an outage is not lost on an instance that has
    not re-subscribed yet. A refused send reached nobody; the outbox delivers it later.
    """

    def __init__(self, grace: float) -> None:
        self._grace = grace
        self._up_since: float | None = time.monotonic() - grace

    def lost(self) -> None:
        self._up_since = None

    def restored(self) -> None:
        if self._up_since is None:
            self._up_since = time.monotonic()

    def check(self) -> None:
        """Raise BackplaneError unless sends can reach every instance."""
        if self._up_since is None:
            raise BackplaneError("The backplane is unreachable.")
        if time.monotonic() - self._up_since < self._grace:
            raise BackplaneError("The backplane is recovering; sends resume in a moment.")


class ValkeyLifetimeManager(HubLifetimeManager):
    """Multi-instance lifetime manager on one Valkey (or Redis) server.

    `client` is a `valkey.asyncio.Valkey` (shared with the cache; pub/sub takes its own
    connection from the pool). `start()` must run before the first connection (the
    HubServer's lifespan does it); `stop()` unsubscribes and fails pending operations.
    After an outage, sends are refused for `resubscribe_grace` seconds once this instance's
    subscriber is back (see `SubscriberLink`).
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
    ) -> None:
        self._client = client
        self._link = SubscriberLink(resubscribe_grace)
        self.server_name = server_name or base64.urlsafe_b64encode(secrets.token_bytes(9)).decode()
        self._prefix = f"{key_prefix}signalr:{hub_name}"
        self._protocols = tuple(protocols or (JsonHubProtocol(), MessagePackHubProtocol()))
        self._ack_timeout = ack_timeout
        self._poll_interval = poll_interval
        self._local = LocalConnections()
        self._results = PendingResults(id_prefix=f"{self.server_name}.")
        self._forwarded: dict[str, tuple[str, str]] = {}  # invocation id -> (conn, origin)
        self._acks: dict[int, tuple[asyncio.Future[None], list[int]]] = {}
        self._ack_counter = 0
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder()
        self._pubsub: Any = None
        self._subscribed: set[str] = set()
        self._confirmations: dict[bytes, list[asyncio.Future[None]]] = {}
        self._subscription_lock = asyncio.Lock()
        self._control: asyncio.Queue[tuple[str, list[Any]]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------------ channel names

    def _all(self) -> str:
        return f"{self._prefix}:all"

    def _group(self, name: str) -> str:
        return f"{self._prefix}:group:{name}"

    def _user(self, user_id: str) -> str:
        return f"{self._prefix}:user:{user_id}"

    def _conn(self, connection_id: str) -> str:
        return f"{self._prefix}:conn:{connection_id}"

    def _server(self, name: str) -> str:
        return f"{self._prefix}:server:{name}"

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._pubsub is not None:
            return
        self._pubsub = self._client.pubsub()
        fixed = (self._all(), self._server(self.server_name))
        waits = [self._expect_confirmation(channel) for channel in fixed]
        self._subscribed.update(fixed)
        await self._pubsub.subscribe(*fixed)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._read_forever(), name="hero-backplane-reader"),
            loop.create_task(self._control_forever(), name="hero-backplane-control"),
        ]
        await self._confirmed(waits)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for future, _ in self._acks.values():
            if not future.done():
                future.set_exception(BackplaneError("The backplane stopped."))
        self._acks.clear()
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
            self._pubsub = None
        self._subscribed.clear()

    # ------------------------------------------------------------------ subscriptions

    def _expect_confirmation(self, channel: str) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirmations.setdefault(channel.encode(), []).append(future)
        return future

    async def _confirmed(self, futures: Sequence[asyncio.Future[None]]) -> None:
        try:
            async with asyncio.timeout(self._ack_timeout):
                await asyncio.gather(*futures)
        except TimeoutError:
            raise BackplaneError("Valkey did not confirm a subscription in time.") from None

    async def _sync_subscription(self, channel: str, wanted: Callable[[], bool]) -> None:
        """Subscribe or unsubscribe `channel` so that it matches `wanted()` right now."""
        if self._pubsub is None:
            raise BackplaneError("The Valkey lifetime manager was not started.")
        async with self._subscription_lock:
            want = wanted()
            if want and channel not in self._subscribed:
                waiting = self._expect_confirmation(channel)
                self._subscribed.add(channel)
                try:
                    await self._pubsub.subscribe(channel)
                    await self._confirmed([waiting])
                except BaseException as exc:
                    # Not subscribed after all: a later attempt must try again.
                    self._subscribed.discard(channel)
                    pending = self._confirmations.get(channel.encode(), [])
                    if waiting in pending:
                        pending.remove(waiting)
                    if isinstance(exc, Exception) and not isinstance(exc, BackplaneError):
                        raise BackplaneError(f"Subscribing to the backplane failed: {exc}") from exc
                    raise
            elif not want and channel in self._subscribed:
                self._subscribed.discard(channel)
                await self._pubsub.unsubscribe(channel)

    def _group_wanted(self, group: str) -> Callable[[], bool]:
        return lambda: group in self._local.groups

    def _user_wanted(self, user_id: str) -> Callable[[], bool]:
        return lambda: user_id in self._local.users

    def _conn_wanted(self, connection_id: str) -> Callable[[], bool]:
        return lambda: connection_id in self._local.connections

    # ------------------------------------------------------------------ publishing

    def _payload(self, message: SerializedMessage) -> dict[str, bytes]:
        return {protocol.name: message.get(protocol) for protocol in self._protocols}

    async def _publish(self, channel: str, envelope: list[Any]) -> int:
        self._link.check()
        try:
            return int(await self._client.publish(channel, self._encoder.encode(envelope)))
        except Exception as exc:
            raise BackplaneError(f"Publishing to the backplane failed: {exc}") from exc

    async def _publish_invocation(
        self, channel: str, message: SerializedMessage, excluded: Collection[str] = ()
    ) -> int:
        envelope = [_Kind.INVOKE, self.server_name, list(excluded), self._payload(message)]
        return await self._publish(channel, envelope)

    async def _publish_invocations(
        self, channels: Sequence[str], message: SerializedMessage
    ) -> None:
        """One invocation to several channels in one MULTI/EXEC: all of them or none."""
        if len(channels) <= 1:
            for channel in channels:
                await self._publish_invocation(channel, message)
            return
        data = self._encoder.encode([_Kind.INVOKE, self.server_name, [], self._payload(message)])
        self._link.check()
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                for channel in channels:
                    pipe.publish(channel, data)
                await pipe.execute()
        except Exception as exc:
            raise BackplaneError(f"Publishing to the backplane failed: {exc}") from exc

    # ------------------------------------------------------------------ connections

    async def on_connected(self, connection: LocalConnection) -> None:
        self._local.add(connection)
        cid = connection.connection_id
        await self._sync_subscription(self._conn(cid), self._conn_wanted(cid))
        user = connection.user_id
        if user is not None:
            await self._sync_subscription(self._user(user), self._user_wanted(user))

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
        channels = [(self._conn(cid), self._conn_wanted(cid))]
        channels += [(self._group(g), self._group_wanted(g)) for g in emptied]
        user = connection.user_id
        if user is not None:
            channels.append((self._user(user), self._user_wanted(user)))
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
    # one MULTI/EXEC, all or nothing.

    async def send_all(self, message: InvocationMessage, excluded: Collection[str] = ()) -> None:
        serialized = SerializedMessage(message)
        await self._publish_invocation(self._all(), serialized, excluded)
        self._local.deliver_all(serialized, excluded)

    async def send_connection(self, connection_id: str, message: InvocationMessage) -> None:
        serialized = SerializedMessage(message)
        if connection_id not in self._local.connections:
            await self._publish_invocation(self._conn(connection_id), serialized)
        else:
            self._local.deliver_connection(connection_id, serialized)

    async def send_connections(
        self, connection_ids: Collection[str], message: InvocationMessage
    ) -> None:
        serialized = SerializedMessage(message)
        local = self._local.connections
        remote = [self._conn(cid) for cid in connection_ids if cid not in local]
        await self._publish_invocations(remote, serialized)
        for cid in connection_ids:
            self._local.deliver_connection(cid, serialized)

    async def send_group(
        self, group: str, message: InvocationMessage, excluded: Collection[str] = ()
    ) -> None:
        serialized = SerializedMessage(message)
        await self._publish_invocation(self._group(group), serialized, excluded)
        self._local.deliver_group(group, serialized, excluded)

    async def send_groups(self, groups: Collection[str], message: InvocationMessage) -> None:
        serialized = SerializedMessage(message)
        await self._publish_invocations([self._group(g) for g in groups], serialized)
        for group in groups:
            self._local.deliver_group(group, serialized)

    async def send_user(self, user_id: str, message: InvocationMessage) -> None:
        serialized = SerializedMessage(message)
        await self._publish_invocation(self._user(user_id), serialized)
        self._local.deliver_user(user_id, serialized)

    async def send_users(self, user_ids: Collection[str], message: InvocationMessage) -> None:
        serialized = SerializedMessage(message)
        await self._publish_invocations([self._user(u) for u in user_ids], serialized)
        for user in user_ids:
            self._local.deliver_user(user, serialized)

    # ------------------------------------------------------------------ groups

    async def _apply_group(self, connection_id: str, action: int, group: str) -> None:
        if action == _ADD:
            if self._local.add_to_group(connection_id, group) is None:
                return
        else:
            self._local.remove_from_group(connection_id, group)
        await self._sync_subscription(self._group(group), self._group_wanted(group))

    async def _remote_group(
        self, channel: str, action: int, group: str, connection_id: str | None, user_id: str | None
    ) -> None:
        """Publish a group move and wait for an ack from every instance that received it."""
        self._ack_counter += 1
        request = self._ack_counter
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # [acks still expected, whether the receiver count is known yet]: an ack may arrive
        # before PUBLISH has told us how many instances received the command.
        expected = [0, 0]
        self._acks[request] = (future, expected)
        try:
            envelope = [
                _Kind.GROUP,
                self.server_name,
                request,
                action,
                group,
                connection_id,
                user_id,
            ]
            receivers = await self._publish(channel, envelope)
            if channel in self._subscribed:
                receivers -= 1  # our own copy is ignored
            if receivers <= 0:
                return
            expected[0] += receivers
            expected[1] = 1
            if expected[0] <= 0 and not future.done():
                future.set_result(None)
            try:
                async with asyncio.timeout(self._ack_timeout):
                    await future
            except TimeoutError:
                raise BackplaneError(
                    f"No acknowledgement for the group operation on '{group}' within "
                    f"{self._ack_timeout:g} s."
                ) from None
        finally:
            self._acks.pop(request, None)

    async def add_to_group(self, connection_id: str, group: str) -> None:
        if connection_id in self._local.connections:
            await self._apply_group(connection_id, _ADD, group)
        else:
            await self._remote_group(self._conn(connection_id), _ADD, group, connection_id, None)

    async def remove_from_group(self, connection_id: str, group: str) -> None:
        if connection_id in self._local.connections:
            await self._apply_group(connection_id, _REMOVE, group)
        else:
            await self._remote_group(self._conn(connection_id), _REMOVE, group, connection_id, None)

    async def add_user_to_group(self, user_id: str, group: str) -> None:
        for cid in self._local.user_connection_ids(user_id):
            await self._apply_group(cid, _ADD, group)
        await self._remote_group(self._user(user_id), _ADD, group, None, user_id)

    async def remove_user_from_group(self, user_id: str, group: str) -> None:
        for cid in self._local.user_connection_ids(user_id):
            await self._apply_group(cid, _REMOVE, group)
        await self._remote_group(self._user(user_id), _REMOVE, group, None, user_id)

    # ------------------------------------------------------------------ client results

    async def invoke_connection(
        self, connection_id: str, target: str, arguments: tuple[Any, ...], timeout: float | None
    ) -> Any:

        async def send(message: InvocationMessage) -> None:
            local = self._local.connections.get(connection_id)
            if local is not None:
                local.write(message)
                return
            envelope = [
                _Kind.CLIENT_INVOKE,
                self.server_name,
                message.invocation_id,
                connection_id,
                self._payload(SerializedMessage(message)),
            ]
            if await self._publish(self._conn(connection_id), envelope) == 0:
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
        envelope = [
            _Kind.RESULT,
            self.server_name,
            completion.invocation_id,
            completion.error,
            completion.has_result,
            completion.result,
        ]
        await self._publish(self._server(origin), envelope)

    # ------------------------------------------------------------------ receiving

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
                backoff = min(backoff * 2, _MAX_READ_BACKOFF)
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
                    self._receive(message["channel"].decode(), message["data"])
                except Exception:
                    logger.exception("bad backplane message on %r", message.get("channel"))

    def _receive(self, channel: str, data: bytes) -> None:
        envelope = self._decoder.decode(data)
        kind, origin = envelope[0], envelope[1]
        if origin == self.server_name:
            return
        if kind == _Kind.INVOKE:
            self._deliver(channel, SerializedMessage(None, envelope[3]), envelope[2])
        elif kind == _Kind.ACK:
            entry = self._acks.get(envelope[2])
            if entry is not None:
                future, expected = entry
                expected[0] -= 1
                if expected[1] and expected[0] <= 0 and not future.done():
                    future.set_result(None)
        elif kind == _Kind.RESULT:
            _, _, invocation_id, error, has_result, result = envelope
            owner = self._results.owner(invocation_id)
            if owner is not None:
                self._results.complete(
                    owner,
                    CompletionMessage(
                        invocation_id=invocation_id,
                        error=error,
                        result=result,
                        has_result=bool(has_result),
                    ),
                )
        elif kind in (_Kind.GROUP, _Kind.CLIENT_INVOKE):
            self._control.put_nowait((channel, envelope))

    def _deliver(self, channel: str, message: SerializedMessage, excluded: list[str]) -> None:
        prefix = self._prefix
        if channel == f"{prefix}:all":
            self._local.deliver_all(message, excluded)
        elif channel.startswith(f"{prefix}:group:"):
            group = channel[len(prefix) + 7 :]
            self._local.deliver_group(group, message, excluded)
        elif channel.startswith(f"{prefix}:user:"):
            self._local.deliver_user(channel[len(prefix) + 6 :], message)
        elif channel.startswith(f"{prefix}:conn:"):
            self._local.deliver_connection(channel[len(prefix) + 6 :], message)

    async def _control_forever(self) -> None:
        """Group moves and client-result requests, in arrival order, off the reader task
        (they may subscribe, which needs the reader to see the confirmation)."""
        while True:
            channel, envelope = await self._control.get()
            try:
                if envelope[0] == _Kind.GROUP:
                    await self._handle_group(envelope)
                else:
                    await self._handle_client_invoke(envelope)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("backplane control message on %r failed", channel)

    async def _handle_group(self, envelope: list[Any]) -> None:
        _, origin, request, action, group, connection_id, user_id = envelope
        if connection_id is not None:
            targets = [connection_id] if connection_id in self._local.connections else []
        else:
            targets = self._local.user_connection_ids(user_id)
        for cid in targets:
            await self._apply_group(cid, action, group)
        await self._publish(self._server(origin), [_Kind.ACK, self.server_name, request])

    async def _handle_client_invoke(self, envelope: list[Any]) -> None:
        _, origin, invocation_id, connection_id, payload = envelope
        connection = self._local.connections.get(connection_id)
        if connection is None:
            await self._publish_result(
                origin,
                CompletionMessage.with_error(
                    invocation_id, f"Connection '{connection_id}' disconnected."
                ),
            )
            return
        self._forwarded[invocation_id] = (connection_id, origin)
        connection.write_serialized(SerializedMessage(None, payload))
