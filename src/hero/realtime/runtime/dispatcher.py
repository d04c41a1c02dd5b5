"""The hub dispatcher: routes each incoming hub message of a connection (docs/protocol.md §9).

Invocations of plain methods take one of the connection's invocation slots (one by default,
so a connection's methods run one at a time, in arrival order); streams and methods with
upload streams run in the background. While a method awaits a client result it gives its
slot back, so the same connection's Completion can still be read (the deadlock rule, 9.5).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from hero.realtime.lifetime import ClientResultError, HubLifetimeManager
from hero.realtime.protocol import (
    CancelInvocationMessage,
    CloseMessage,
    CompletionMessage,
    HubMessage,
    InvocationMessage,
    PingMessage,
    StreamInvocationMessage,
    StreamItemMessage,
)
from hero.realtime.runtime.connection import CloseReason, HubConnection, UploadStream
from hero.realtime.runtime.descriptors import HubMethod
from hero.realtime.runtime.errors import BindingError, HubException
from hero.realtime.runtime.limits import TokenBucket
from hero.realtime.runtime.observers import InvocationObserver, LimitObserver
from hero.realtime.runtime.options import HubOptions

logger = logging.getLogger("hero.realtime.hub")


class HubInstance(Protocol):
    async def on_connected(self) -> None: ...

    async def on_disconnected(self, exception: BaseException | None) -> None: ...


HubActivator = Callable[[HubConnection], Any]
"""Creates the hub object that serves one invocation or lifecycle event of a connection."""


class _Slot:
    """An invocation slot that can be given back early, exactly once."""

    __slots__ = ("_released", "_semaphore")

    def __init__(self, semaphore: asyncio.Semaphore) -> None:
        self._semaphore = semaphore
        self._released = False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._semaphore.release()


_current_slot: contextvars.ContextVar[_Slot | None] = contextvars.ContextVar(
    "hero_invocation_slot", default=None
)
_invoking_connection: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "hero_invoking_connection", default=None
)


def invoking_connection_id() -> str | None:
    """The connection whose client invocation (hub method or stream) runs in this task, or
    None (in `on_connected` / `on_disconnected`, and outside any hub method)."""
    return _invoking_connection.get()


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def release_invocation_slot() -> None:
    """Give the current invocation's slot back (called before awaiting a client result)."""
    slot = _current_slot.get()
    if slot is not None:
        slot.release()


def error_text(prefix: str, exc: BaseException, detailed: bool) -> str:
    """ErrorMessageHelper: `<prefix>` or `<prefix> <Type>: <message>` (docs/protocol.md §9.2).

    A failed client result surfaces as the HubException .NET raises for it, so the client's
    own error text reaches the caller.
    """
    if isinstance(exc, ClientResultError):
        return f"{prefix} HubException: {exc}"
    if isinstance(exc, HubException) or detailed:
        return f"{prefix} {type(exc).__name__}: {exc}"
    return prefix


class HubDispatcher:
    """Stateless per hub; all per-connection state lives on the HubConnection."""

    def __init__(
        self,
        methods: dict[str, HubMethod],
        activator: HubActivator,
        lifetime: HubLifetimeManager,
        options: HubOptions,
        observer: InvocationObserver | None = None,
        *,
        limit_observer: LimitObserver | None = None,
    ) -> None:
        self._methods = methods
        self._activate = activator
        self._lifetime = lifetime
        self._options = options
        self._observer = observer
        self._limits = limit_observer or LimitObserver()

    @property
    def methods(self) -> dict[str, HubMethod]:
        return self._methods

    def _observe(self, method: str, error: bool) -> None:
        if self._observer is not None:
            self._observer.invocation(method, error)

    async def on_connected(self, connection: HubConnection) -> None:
        hub = self._activate(connection)
        await hub.on_connected()

    async def on_disconnected(
        self, connection: HubConnection, exception: BaseException | None
    ) -> None:
        hub = self._activate(connection)
        await hub.on_disconnected(exception)

    async def dispatch(self, connection: HubConnection, message: HubMessage) -> None:
        if isinstance(message, InvocationMessage):
            if not self._over_rate(connection, message.target, message.invocation_id):
                await self._invocation(connection, message)
        elif isinstance(message, StreamInvocationMessage):
            if not self._over_rate(connection, message.target, message.invocation_id):
                self._stream_invocation(connection, message)
        elif isinstance(message, StreamItemMessage):
            upload = connection.uploads.get(message.invocation_id)
            if upload is not None:
                try:
                    await upload.push(message.item)
                except Exception as exc:
                    connection.uploads.pop(message.invocation_id, None)
                    upload.complete(HubException(f"Invalid stream item: {exc}"))
        elif isinstance(message, CompletionMessage):
            upload = connection.uploads.pop(message.invocation_id, None)
            if upload is not None:
                upload.complete(HubException(message.error) if message.error else None)
            else:
                await self._lifetime.set_connection_result(connection.connection_id, message)
        elif isinstance(message, CancelInvocationMessage):
            task = connection.streams.get(message.invocation_id)
            if task is not None:
                if connection.cancelled_streams is None:
                    connection.cancelled_streams = set()
                connection.cancelled_streams.add(message.invocation_id)
                task.cancel()
        elif isinstance(message, PingMessage):
            connection.ping_received = True
        elif isinstance(message, CloseMessage):
            error = HubException(message.error) if message.error else None
            connection.abort(CloseReason(CloseMessage(), error))

    def _over_rate(self, connection: HubConnection, target: str, invocation_id: str | None) -> bool:
        """Take a token from the connection's invocation bucket; when it is empty, answer
        with an error Completion (or drop a non-blocking invocation) and return True."""
        rate = self._options.maximum_invocations_per_second
        if not rate:
            return False
        bucket = connection.invocation_bucket
        if bucket is None:
            bucket = TokenBucket(rate, self._options.invocation_burst)
            connection.invocation_bucket = bucket
        if bucket.take():
            return False
        logger.debug("invocation of %r over the rate on %s", target, connection.connection_id)
        self._limits.invocation_rate_limited(bool(invocation_id))
        if invocation_id:
            connection.write(
                CompletionMessage.with_error(
                    invocation_id,
                    f"An unexpected error occurred invoking '{target}' on the server. "
                    f"HubException: Too many invocations: at most {rate:g} per second "
                    f"(bursts of {self._options.invocation_burst}).",
                )
            )
        return True

    def _lookup(
        self, connection: HubConnection, target: str, invocation_id: str | None
    ) -> HubMethod | None:
        method = self._methods.get(target.lower())
        if method is None:
            logger.debug("unknown hub method %r from %s", target, connection.connection_id)
            self._observe("(unknown)", True)
            if invocation_id:
                connection.write(
                    CompletionMessage.with_error(invocation_id, f"Unknown hub method '{target}'")
                )
        return method

    def _bind(
        self,
        connection: HubConnection,
        method: HubMethod,
        message: InvocationMessage | StreamInvocationMessage,
    ) -> list[Any] | None:
        target = message.target
        invocation_id = message.invocation_id
        opening = len(message.stream_ids) + (1 if method.is_streaming else 0)
        limit = self._options.maximum_concurrent_streams
        if opening and len(connection.streams) + len(connection.uploads) + opening > limit:
            if invocation_id:
                connection.write(
                    CompletionMessage.with_error(
                        invocation_id,
                        f"An unexpected error occurred invoking '{target}' on the server. "
                        f"HubException: Too many concurrent streams (at most {limit}).",
                    )
                )
            self._observe(method.name, True)
            return None
        if len(message.stream_ids) != method.stream_count:
            if invocation_id:
                connection.write(
                    CompletionMessage.with_error(
                        invocation_id,
                        f"An unexpected error occurred invoking '{target}' on the server. "
                        f"HubException: Client sent {len(message.stream_ids)} stream(s), "
                        f"Hub method expects {method.stream_count}.",
                    )
                )
            self._observe(method.name, True)
            return None
        try:
            args = method.bind(message.arguments)
        except BindingError as exc:
            if invocation_id:
                text = f"Failed to invoke '{target}' due to an error on the server."
                if self._options.enable_detailed_errors:
                    text += f" InvalidDataException: {exc}"
                connection.write(CompletionMessage.with_error(invocation_id, text))
            self._observe(method.name, True)
            return None
        in_use = [sid for sid in message.stream_ids if sid in connection.uploads]
        if in_use or len(set(message.stream_ids)) != len(message.stream_ids):
            if invocation_id:
                duplicate = in_use[0] if in_use else message.stream_ids[0]
                connection.write(
                    CompletionMessage.with_error(
                        invocation_id, f"Invocation ID '{duplicate}' is already in use."
                    )
                )
            self._observe(method.name, True)
            return None
        # Interleave upload streams with plain arguments in parameter order.
        full: list[Any] = []
        plain = iter(args)
        stream_ids = iter(message.stream_ids)
        for param in method.parameters:
            if param.is_stream:
                upload = UploadStream(self._options.stream_buffer_capacity, param.adapter)
                connection.uploads[next(stream_ids)] = upload
                full.append(upload)
            else:
                full.append(next(plain))
        return full

    def _misuse(
        self,
        connection: HubConnection,
        method: HubMethod,
        message: InvocationMessage | StreamInvocationMessage,
        kind: str,
        used: str,
    ) -> None:
        """A streaming method invoked as plain, or the reverse (docs/protocol.md §9.2)."""
        if message.invocation_id:
            connection.write(
                CompletionMessage.with_error(
                    message.invocation_id,
                    f"The client attempted to invoke the {kind} '{message.target}' method "
                    f"with a {used} invocation.",
                )
            )
        self._observe(method.name, True)

    async def _invocation(self, connection: HubConnection, message: InvocationMessage) -> None:
        method = self._lookup(connection, message.target, message.invocation_id)
        if method is None:
            return
        if method.is_streaming:
            self._misuse(connection, method, message, "streaming", "non-streaming")
            return
        args = self._bind(connection, method, message)
        if args is None:
            return
        if method.stream_count:
            connection.spawn(
                self._run_invocation(connection, method, message, args, None),
                f"hero-invoke-{method.name}",
            )
            return
        await connection.slots.acquire()
        slot = _Slot(connection.slots)
        connection.spawn(
            self._run_invocation(connection, method, message, args, slot),
            f"hero-invoke-{method.name}",
        )

    async def _run_invocation(
        self,
        connection: HubConnection,
        method: HubMethod,
        message: InvocationMessage,
        args: list[Any],
        slot: _Slot | None,
    ) -> None:
        _current_slot.set(slot)
        _invoking_connection.set(connection.connection_id)
        invocation_id = message.invocation_id
        failed = False
        try:
            hub = self._activate(connection)
            result = await method.function(hub, *args)
        except (Exception, asyncio.CancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError) and _being_cancelled():
                raise
            # (A CancelledError the method let out without being cancelled itself, e.g. from
            # awaiting something another task cancelled, is an error like any other.)
            failed = True
            if not isinstance(exc, HubException | ClientResultError | asyncio.CancelledError):
                logger.exception("hub method %s failed", method.name)
            if invocation_id:
                connection.write(
                    CompletionMessage.with_error(
                        invocation_id,
                        error_text(
                            f"An unexpected error occurred invoking '{message.target}' "
                            "on the server.",
                            exc,
                            self._options.enable_detailed_errors,
                        ),
                    )
                )
        else:
            if invocation_id:
                self._write_result(connection, message.target, invocation_id, result)
        finally:
            for stream_id in message.stream_ids:
                upload = connection.uploads.pop(stream_id, None)
                if upload is not None:
                    upload.abandon()
            if slot is not None:
                slot.release()
            self._observe(method.name, failed)

    def _write_result(
        self, connection: HubConnection, target: str, invocation_id: str, result: Any
    ) -> None:
        try:
            data = connection.protocol.write(CompletionMessage.with_result(invocation_id, result))
        except (TypeError, ValueError) as exc:
            logger.exception("result of %s cannot be serialized", target)
            data = connection.protocol.write(
                CompletionMessage.with_error(
                    invocation_id,
                    error_text(
                        f"An unexpected error occurred invoking '{target}' on the server.",
                        exc,
                        self._options.enable_detailed_errors,
                    ),
                )
            )
        connection._enqueue(data)

    def _stream_invocation(
        self, connection: HubConnection, message: StreamInvocationMessage
    ) -> None:
        invocation_id = message.invocation_id
        if invocation_id in connection.streams:
            connection.write(
                CompletionMessage.with_error(
                    invocation_id, f"Invocation ID '{invocation_id}' is already in use."
                )
            )
            return
        method = self._lookup(connection, message.target, invocation_id)
        if method is None:
            return
        if not method.is_streaming:
            self._misuse(connection, method, message, "non-streaming", "streaming")
            return
        args = self._bind(connection, method, message)
        if args is None:
            return
        task = connection.spawn(
            self._run_stream(connection, method, message, args), f"hero-stream-{method.name}"
        )
        connection.streams[invocation_id] = task
        # Bookkeeping runs when the task ends, even one cancelled before its first step
        # (a StreamInvocation and its CancelInvocation in one frame).
        task.add_done_callback(lambda done: self._stream_finished(connection, message, done))

    @staticmethod
    def _stream_finished(
        connection: HubConnection, message: StreamInvocationMessage, task: asyncio.Task[None]
    ) -> None:
        invocation_id = message.invocation_id
        if connection.streams.get(invocation_id) is task:
            del connection.streams[invocation_id]
        cancelled = connection.cancelled_streams
        cancelled_by_client = False
        if cancelled is not None and invocation_id in cancelled:
            cancelled.discard(invocation_id)
            cancelled_by_client = True
        if task.cancelled() and cancelled_by_client:
            # The client cancelled this stream: a final empty Completion, as .NET sends.
            connection.write(CompletionMessage.empty(invocation_id))
        for stream_id in message.stream_ids:
            upload = connection.uploads.pop(stream_id, None)
            if upload is not None:
                upload.abandon()

    def _stream_failed(self, invocation_id: str, exc: BaseException) -> CompletionMessage:
        return CompletionMessage.with_error(
            invocation_id,
            error_text(
                "An error occurred on the server while streaming results.",
                exc,
                self._options.enable_detailed_errors,
            ),
        )

    async def _run_stream(
        self,
        connection: HubConnection,
        method: HubMethod,
        message: StreamInvocationMessage,
        args: list[Any],
    ) -> None:
        _invoking_connection.set(connection.connection_id)
        invocation_id = message.invocation_id
        failed = False
        iterator: AsyncIterator[Any] | None = None
        try:
            hub = self._activate(connection)
            produced = method.function(hub, *args)
            if inspect.isawaitable(produced):
                produced = await produced
            if produced is None or not hasattr(produced, "__aiter__"):
                connection.write(
                    CompletionMessage.with_error(
                        invocation_id,
                        f"The value returned by the streaming method '{method.name}' is not "
                        "an async iterator.",
                    )
                )
                failed = True
                return
            iterator = produced.__aiter__()
            async for item in iterator:
                connection.write(StreamItemMessage(invocation_id=invocation_id, item=item))
            connection.write(CompletionMessage.empty(invocation_id))
        except asyncio.CancelledError as exc:
            if _being_cancelled():
                raise  # by the client (CancelInvocation) or the connection closing
            failed = True
            connection.write(self._stream_failed(invocation_id, exc))
        except Exception as exc:
            failed = True
            if not isinstance(exc, HubException):
                logger.exception("stream %s failed", method.name)
            connection.write(self._stream_failed(invocation_id, exc))
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:
                    logger.debug("closing stream %s raised", method.name, exc_info=True)
            for stream_id in message.stream_ids:
                upload = connection.uploads.pop(stream_id, None)
                if upload is not None:
                    upload.abandon()
            self._observe(method.name, failed)
