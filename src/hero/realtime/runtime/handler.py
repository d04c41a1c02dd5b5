"""The hub connection handler: handshake, read loop, keep-alive, finally-cleanup.

`HubConnectionHandler.run` is the application the HTTP-connections layer runs for each
logical connection. Every connection's cleanup runs in `finally`: lifetime manager and hub
`on_disconnected` are always called once the connection was announced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable

from hero.realtime.lifetime import HubLifetimeManager
from hero.realtime.protocol import (
    PING,
    AckMessage,
    CloseMessage,
    Framer,
    HubMessage,
    HubProtocol,
    JsonHubProtocol,
    MessagePackHubProtocol,
    MessageTooLargeError,
    ProtocolError,
    SequenceMessage,
    TransferFormat,
)
from hero.realtime.protocol.handshake import (
    HANDSHAKE_CANCELED,
    HANDSHAKE_OK,
    HANDSHAKE_UNEXPECTED,
    encode_handshake_error,
    parse_handshake,
)
from hero.realtime.protocol.messages import TRACKABLE_TYPES
from hero.realtime.runtime.connection import CLOSED_WITH_ERROR, CloseReason, HubConnection
from hero.realtime.runtime.dispatcher import HubDispatcher, error_text
from hero.realtime.runtime.errors import HubException
from hero.realtime.runtime.observers import ConnectionObserver
from hero.realtime.runtime.options import HubOptions
from hero.realtime.transports import Connection, TransportKind

logger = logging.getLogger("hero.realtime.hub")

READ_SLICE = 16_384
"""Bytes of one transport read parsed at a time (bounds the work between two yields)."""
MESSAGES_PER_TURN = 64
"""Messages one connection dispatches before its read loop yields to the others."""
STATEFUL_RECONNECT_VERSION = 2
"""The handshake version a client sends when it negotiated stateful reconnect."""

_BUILTIN_PROTOCOLS: dict[str, type[HubProtocol]] = {
    "json": JsonHubProtocol,
    "messagepack": MessagePackHubProtocol,
}


def protocols_by_name(names: Iterable[str]) -> dict[str, HubProtocol]:
    """Instances of the built-in protocols, keyed by lower-cased name."""
    out: dict[str, HubProtocol] = {}
    for name in names:
        factory = _BUILTIN_PROTOCOLS.get(name.lower())
        if factory is None:
            raise ValueError(f"unknown hub protocol {name!r}")
        out[name.lower()] = factory()
    return out


class HubConnectionHandler:
    def __init__(
        self,
        dispatcher: HubDispatcher,
        lifetime: HubLifetimeManager,
        options: HubOptions,
        observer: ConnectionObserver | None = None,
    ) -> None:
        self._dispatcher = dispatcher
        self._lifetime = lifetime
        self._options = options
        self._protocols = protocols_by_name(options.supported_protocols)
        self._observer = observer or ConnectionObserver()
        self._live: dict[str, HubConnection] = {}
        self._heartbeat: asyncio.Task[None] | None = None

    @property
    def protocols(self) -> dict[str, HubProtocol]:
        return self._protocols

    async def run(self, transport: Connection) -> None:
        handshake = await self._handshake(transport)
        if handshake is None:
            transport.close()
            return
        protocol, rest, version = handshake
        connection = HubConnection(transport, protocol)
        if (
            version >= STATEFUL_RECONNECT_VERSION
            and transport.lifecycle.stateful_negotiated
            and transport.transport is TransportKind.WEBSOCKETS
        ):
            connection.enable_stateful_reconnect(self._options.stateful_reconnect_buffer_size)
        connection.slots = asyncio.Semaphore(self._options.maximum_parallel_invocations_per_client)
        self._observer.connected(connection)
        announced = False
        try:
            try:
                # Inside the try: a backplane failure here still ends in _shutdown, which
                # tells the lifetime manager to forget whatever it registered.
                await self._lifetime.on_connected(connection)
                await self._dispatcher.on_connected(connection)
                announced = True
            except Exception as exc:
                logger.exception("on_connected failed for %s", connection.connection_id)
                text = error_text(CLOSED_WITH_ERROR, exc, self._options.enable_detailed_errors)
                connection.abort(CloseReason(CloseMessage(error=text), exc))
            if announced:
                await self._serve(connection, rest)
        finally:
            try:
                await self._shutdown(connection)
            finally:
                if announced:
                    reason = connection.close_reason
                    try:
                        await self._dispatcher.on_disconnected(
                            connection, reason.exception if reason else None
                        )
                    except Exception:
                        logger.exception("on_disconnected failed for %s", connection.connection_id)
                if connection.dropped:
                    self._observer.slow_consumer(connection)
                self._observer.disconnected(connection)

    async def _handshake(self, transport: Connection) -> tuple[HubProtocol, bytes, int] | None:
        buffer = b""
        limit = self._options.maximum_receive_message_size
        try:
            async with asyncio.timeout(self._options.handshake_timeout):
                while True:
                    data = await transport.receive()
                    if data is None:
                        return None
                    buffer += data
                    parsed = parse_handshake(buffer, limit)
                    if parsed is not None:
                        break
        except (TimeoutError, MessageTooLargeError):
            self._fail_handshake(transport, HANDSHAKE_CANCELED)
            return None
        except ProtocolError as exc:
            detailed = self._options.enable_detailed_errors
            self._fail_handshake(transport, str(exc) if detailed else HANDSHAKE_UNEXPECTED)
            return None
        request, rest = parsed
        protocol = self._protocols.get(request.protocol.lower())
        if protocol is None:
            self._fail_handshake(transport, f"The protocol '{request.protocol}' is not supported.")
            return None
        if not protocol.is_version_supported(request.version):
            self._fail_handshake(
                transport,
                f"The server does not support version {request.version} of the "
                f"'{request.protocol}' protocol.",
            )
            return None
        if not protocol.transfer_format & transport.supported_formats:
            self._fail_handshake(
                transport,
                f"Cannot use the '{request.protocol}' protocol on the current transport. The "
                "transport does not support 'Binary' transfer format.",
            )
            return None
        transport.transfer_format = (
            TransferFormat.BINARY
            if protocol.transfer_format is TransferFormat.BINARY
            else TransferFormat.TEXT
        )
        transport.outbound.write(HANDSHAKE_OK)
        return protocol, rest, request.version

    @staticmethod
    def _fail_handshake(transport: Connection, text: str) -> None:
        logger.debug("handshake failed for %s: %s", transport.connection_id, text)
        transport.outbound.write(encode_handshake_error(text))

    async def _serve(self, connection: HubConnection, rest: bytes) -> None:
        """Run the read loop until the client leaves or `abort` cancels it.

        The loop runs in the connection's own task (a task less per connection): `abort`
        cancels the task only while it reads, and that cancellation ends the loop here;
        one from anywhere else (the server stopping) still propagates."""
        task = asyncio.current_task()
        assert task is not None
        connection.reader = task
        self._live[connection.connection_id] = connection
        self._ensure_heartbeat()
        try:
            await self._read_loop(connection, rest)
        except asyncio.CancelledError:
            if not connection.read_cancelled or task.cancelling() > 1:
                raise  # not (only) abort's: the task itself is being cancelled
        finally:
            connection.reader = None
            if connection.read_cancelled:
                connection.read_cancelled = False
                task.uncancel()  # abort's request is spent, wherever the loop ended
            self._live.pop(connection.connection_id, None)

    async def _read_loop(self, connection: HubConnection, data: bytes) -> None:
        """Parse and dispatch what the client sends until it leaves or the connection closes.

        Fair to the other connections: a WebSocket message may hold thousands of small hub
        messages, so it is parsed `READ_SLICE` bytes at a time and the loop yields to the
        event loop after every `MESSAGES_PER_TURN` messages."""
        framer = connection.protocol.new_framer(self._options.maximum_receive_message_size)
        inbound = connection.transport.inbound  # not via Connection.receive: a coroutine less
        budget = MESSAGES_PER_TURN
        while True:
            for start in range(0, len(data), READ_SLICE):
                chunk = data if len(data) <= READ_SLICE else data[start : start + READ_SLICE]
                messages = self._parse(connection, framer, chunk)
                if messages is None:
                    return
                for message in messages:
                    if not await self._handle(connection, message):
                        return
                    budget -= 1
                    if budget <= 0:
                        budget = MESSAGES_PER_TURN
                        await asyncio.sleep(0)
                        if connection.closing.is_set():
                            return
            next_data = await inbound.receive()
            if next_data is None:
                connection.abort(CloseReason(None, None))
                return
            connection.last_received = time.monotonic()
            data = next_data

    def _parse(
        self, connection: HubConnection, framer: Framer, data: bytes
    ) -> list[HubMessage] | None:
        """The complete messages in `data`; None (and the connection aborted) when the
        client broke the protocol."""
        try:
            messages = connection.protocol.parse_all(framer, data)
        except ProtocolError as exc:
            logger.info("protocol error from %s: %s", connection.connection_id, exc)
            detailed = self._options.enable_detailed_errors
            text = f"{CLOSED_WITH_ERROR} InvalidDataException: {exc}" if detailed else None
            self._close_with_error(connection, exc, text)
            return None
        if messages:
            self._observer.message_received(connection, len(messages))
        return messages

    async def _handle(self, connection: HubConnection, message: HubMessage) -> bool:
        """Dispatch one message; False when the read loop must stop."""
        replay = connection.replay
        if replay is not None:
            if isinstance(message, AckMessage):
                replay.acknowledge(message.sequence_id)
                return True
            if isinstance(message, SequenceMessage):
                if not replay.client_sequence(message.sequence_id):
                    bad = ProtocolError(
                        "Sequence ID greater than amount of messages we've received."
                    )
                    self._close_with_error(connection, bad)
                    return False
                return True
            if isinstance(message, TRACKABLE_TYPES) and not replay.accept_incoming():
                return True  # replayed by the client after a resume: seen already
        connection.dispatching += 1
        try:
            await self._dispatcher.dispatch(connection, message)
        except Exception as exc:
            # Not the client's fault (e.g. the backplane failed relaying a client result):
            # end this connection with an error, others go on.
            logger.exception("dispatch failed for %s", connection.connection_id)
            self._close_with_error(connection, exc)
            return False
        finally:
            connection.dispatching -= 1
            connection.last_received = time.monotonic()
        return not connection.closing.is_set()

    def _close_with_error(
        self, connection: HubConnection, exc: BaseException, text: str | None = None
    ) -> None:
        """End `connection` with a Close carrying an error and `allowReconnect` (the text
        names the exception only with detailed errors on)."""
        error = text or error_text(CLOSED_WITH_ERROR, exc, self._options.enable_detailed_errors)
        connection.abort(CloseReason(CloseMessage(error=error, allow_reconnect=True), exc))

    def _ensure_heartbeat(self) -> None:
        task = self._heartbeat
        loop = asyncio.get_running_loop()
        if task is None or task.done() or task.get_loop() is not loop:
            self._heartbeat = loop.create_task(self._beat_forever(), name="hero-hub-heartbeat")

    async def aclose(self) -> None:
        """Stop the heartbeat (connections end through the endpoint)."""
        task = self._heartbeat
        self._heartbeat = None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _beat_forever(self) -> None:
        """One timer for every connection (not one per connection): keep-alive pings,
        client timeouts, credential expiry and stateful-reconnect Acks."""
        options = self._options
        interval = min(1.0, options.keep_alive_interval / 4, options.client_timeout_interval / 4)
        while True:
            await asyncio.sleep(interval)
            now, wall = time.monotonic(), time.time()
            for connection in list(self._live.values()):
                if not connection.closing.is_set():
                    try:
                        self._beat(connection, now, wall)
                    except Exception:
                        logger.exception("heartbeat failed for %s", connection.connection_id)

    def _beat(self, connection: HubConnection, now: float, wall: float) -> None:
        options = self._options
        transport = connection.transport
        expires_at = connection.identity.expires_at
        if (
            expires_at is not None
            and options.close_on_authentication_expiration
            and wall >= expires_at
        ):
            connection.abort(
                CloseReason(
                    CloseMessage(allow_reconnect=True),
                    HubException("The connection's credentials expired."),
                )
            )
            return
        if (
            connection.ping_received
            and not connection.dispatching
            and now - connection.last_received >= options.client_timeout_interval
        ):
            exc = TimeoutError(
                "Client hasn't sent a message/ping within the configured ClientTimeoutInterval."
            )
            self._close_with_error(connection, exc)
            return
        if connection.replay is not None:
            acknowledged = connection.replay.ack_due()
            if acknowledged is not None:
                connection.write(AckMessage(acknowledged))
        if (
            not transport.has_inherent_keep_alive
            and now - transport.outbound.last_write >= options.keep_alive_interval
        ):
            connection.write(PING)

    async def _shutdown(self, connection: HubConnection) -> None:
        """End the connection in the order its peers need.

        Streams are cancelled and the lifetime manager forgets the connection first (so
        pending client results fail at once with `Connection '<id>' disconnected.`), then
        the Close message is written and the transport ends, and only then do plain
        invocations get a short grace period to finish (their writes are dropped).
        """
        connection.closing.set()
        for upload in list(connection.uploads.values()):
            upload.abandon()
        connection.uploads.clear()
        for task in list(connection.streams.values()):
            task.cancel()
        try:
            await self._lifetime.on_disconnected(connection)
        finally:
            self._write_close(connection)
            pending = [t for t in connection.tasks or () if not t.done()]
            if pending:
                _, still = await asyncio.wait(
                    pending, timeout=self._options.invocation_drain_timeout
                )
                for task in still:
                    task.cancel()
                if still:
                    await asyncio.gather(*still, return_exceptions=True)

    @staticmethod
    def _write_close(connection: HubConnection) -> None:
        reason = connection.close_reason
        transport = connection.transport
        if reason is not None and reason.message is not None:
            data = connection.protocol.write(reason.message)
            if not transport.outbound.write(data):
                # The queue is full (slow consumer): drop what is queued, keep the Close.
                transport.outbound.take()
                transport.outbound.write(data)
        transport.close()
