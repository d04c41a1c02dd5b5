"""Hub runtime options (the .NET HubOptions defaults, docs/protocol.md §7.1)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HubOptions:
    """Per-hub behaviour. All durations are seconds.

    `send_queue_limit` bounds the bytes queued for one connection; a client that stops
    reading is disconnected once its queue would pass it, so it never slows the others.
    """

    keep_alive_interval: float = 15.0
    client_timeout_interval: float = 30.0
    handshake_timeout: float = 15.0
    maximum_receive_message_size: int | None = 32_768
    enable_detailed_errors: bool = False
    maximum_parallel_invocations_per_client: int = 1
    stream_buffer_capacity: int = 10
    close_on_authentication_expiration: bool = True
    invocation_drain_timeout: float = 5.0
    maximum_concurrent_streams: int = 100
    """Streams (server-to-client) plus upload streams open at once on one connection. They
    run outside the one-invocation slot, so without a bound one client could start any
    number of them; past it, the invocation gets an error Completion."""
    stateful_reconnect_buffer_size: int = 1_048_576
    """Bytes of unacknowledged messages kept per stateful connection. .NET's default is
    100 000 and its sends wait when it is full; hero's writes never wait, so a client that
    lets this fill up is disconnected (with allowReconnect) like any slow consumer."""
    supported_protocols: tuple[str, ...] = ("json", "messagepack")
    maximum_group_name_length: int = 256
    """Characters in a group name. Longer names, empty names and names holding a control
    character (U+0000-U+001F, U+007F-U+009F) are refused by `Groups` (docs/hubs.md)."""
    maximum_groups_per_connection: int = 1_000
    """Groups one connection may be in before a join made from one of its own invocations
    is refused (joins made in `on_connected` or for other connections count but are never
    refused). 0: no limit."""
    maximum_invocations_per_second: float = 0.0
    """Average rate of Invocations plus StreamInvocations per connection (a token bucket);
    over it an invocation is not run. 0 (the library default): no limit."""
    invocation_burst: int = 40
    """Invocations a connection may send at once (the bucket's size), with a rate set."""

    def __post_init__(self) -> None:
        if self.keep_alive_interval <= 0 or self.client_timeout_interval <= 0:
            raise ValueError("keep-alive and client timeout intervals must be positive")
        if self.handshake_timeout <= 0:
            raise ValueError("handshake timeout must be positive")
        if self.maximum_parallel_invocations_per_client < 1:
            raise ValueError("maximum_parallel_invocations_per_client must be at least 1")
        if self.maximum_receive_message_size is not None and self.maximum_receive_message_size < 1:
            raise ValueError("maximum_receive_message_size must be positive")
        if self.maximum_group_name_length < 1:
            raise ValueError("maximum_group_name_length must be at least 1")
        if self.maximum_groups_per_connection < 0:
            raise ValueError("maximum_groups_per_connection must not be negative (0: no limit)")
        if not self.maximum_invocations_per_second >= 0:
            raise ValueError("maximum_invocations_per_second must not be negative (0: no limit)")
        if self.invocation_burst < 1:
            raise ValueError("invocation_burst must be at least 1")
