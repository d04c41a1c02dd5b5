"""Prometheus metrics for the platform (`GET /metrics`).

One registry per app (no module-level singletons). Hot-path counts (messages sent to each
connection) are plain integers on the connection, summed at scrape time, so a broadcast
pays nothing for metrics.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from hero.platform.hub import TypingObserver
from hero.platform.rate_limit import FixedWindowLimiter
from hero.realtime import (
    ConnectionEndpoint,
    ConnectionObserver,
    HubConnection,
    LimitObserver,
    Relay,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _LiveConnections(Collector):
    def __init__(self, metrics: PlatformMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "hero_connections",
            "Open hub connections by transport and protocol.",
            labels=["transport", "protocol"],
        )
        counts: dict[tuple[str, str], int] = {}
        sent = self._metrics.closed_messages_sent
        dropped = self._metrics.closed_ephemeral_dropped
        for connection in self._metrics.live.values():
            transport = connection.transport.transport
            key = (transport.value if transport else "none", connection.protocol.name)
            counts[key] = counts.get(key, 0) + 1
            sent += connection.messages_sent
            dropped += connection.ephemeral_dropped
        for (transport_name, protocol), count in sorted(counts.items()):
            gauge.add_metric([transport_name, protocol], count)
        yield gauge
        out = CounterMetricFamily(
            "hero_messages_sent", "Hub messages queued to clients (all connections)."
        )
        out.add_metric([], sent)
        yield out
        skipped = CounterMetricFamily(
            "hero_ephemeral_dropped",
            "Ephemeral messages (typing, presence) not queued for a client that was behind.",
        )
        skipped.add_metric([], dropped)
        yield skipped


USER_CONNECTIONS = "user_connections"
"""The `limit` label of refusals by `RateLimiting:MaximumConnectionsPerUser`."""


class _RateLimits(Collector):
    """The `RateLimiting` counts, read at scrape time from the limiters and the endpoint."""

    def __init__(
        self, limiters: Mapping[str, FixedWindowLimiter], endpoint: ConnectionEndpoint | None
    ) -> None:
        self._limiters = dict(limiters)
        self._endpoint = endpoint

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        refused = CounterMetricFamily(
            "hero_rate_limit_rejections",
            "Requests answered 429 by a RateLimiting limit, by limit.",
            labels=["limit"],
        )
        tracked = GaugeMetricFamily(
            "hero_rate_limit_tracked_clients",
            "Clients (addresses or users) with a rate window in memory, by limit.",
            labels=["limit"],
        )
        evicted = CounterMetricFamily(
            "hero_rate_limit_evictions",
            "Rate windows dropped before their end to bound memory, by limit.",
            labels=["limit"],
        )
        for name, limiter in sorted(self._limiters.items()):
            refused.add_metric([name], limiter.rejections)
            tracked.add_metric([name], len(limiter))
            evicted.add_metric([name], limiter.evictions)
        if self._endpoint is not None:
            refused.add_metric([USER_CONNECTIONS], self._endpoint.user_limit_refusals)
        yield refused
        yield tracked
        yield evicted


class _Relay(Collector):
    """The request relay's counts (requests to and from other instances), at scrape time."""

    def __init__(self, relay: Relay) -> None:
        self._relay = relay

    def collect(self) -> Iterator[CounterMetricFamily]:
        relay = self._relay
        for name, text, value in (
            (
                "hero_relay_forwarded",
                "Requests relayed to the instance owning their connection.",
                relay.relayed,
            ),
            (
                "hero_relay_owner_gone",
                "Relayed requests answered 404: the owner was gone.",
                relay.owner_gone,
            ),
            ("hero_relay_served", "Requests served here for another instance.", relay.served),
        ):
            family = CounterMetricFamily(name, text)
            family.add_metric([], value)
            yield family


class PlatformMetrics(ConnectionObserver, LimitObserver, TypingObserver):
    """Observer for the hub runtime and AppHub, backed by its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.live: dict[str, HubConnection] = {}
        self.closed_messages_sent = 0
        self.closed_ephemeral_dropped = 0
        self.messages_received = Counter(
            "hero_messages_received", "Hub messages received from clients.", registry=self.registry
        )
        self.invocations = Counter(
            "hero_invocations",
            "Hub method invocations by method.",
            ["method"],
            registry=self.registry,
        )
        self.invocation_errors = Counter(
            "hero_invocation_errors",
            "Hub method invocations that ended in an error, by method.",
            ["method"],
            registry=self.registry,
        )
        self.send_queue_drops = Counter(
            "hero_send_queue_drops",
            "Connections dropped because their send queue was full (slow consumers).",
            registry=self.registry,
        )
        self.throttle_hits = Counter(
            "hero_typing_throttle_hits",
            "Typing calls suppressed by the 3 s throttle.",
            registry=self.registry,
        )
        self.group_name_refusals = Counter(
            "hero_group_name_refusals",
            "Group names refused: empty, too long or holding a control character.",
            registry=self.registry,
        )
        self.group_limit_refusals = Counter(
            "hero_group_limit_refusals",
            "Joins refused because the connection was in Realtime:MaximumGroupsPerConnection "
            "groups.",
            registry=self.registry,
        )
        self.invocations_rate_limited = Counter(
            "hero_invocations_rate_limited",
            "Invocations over Realtime:MaximumInvocationsPerSecond, not run: refused (an error "
            "Completion) or dropped (non-blocking, no answer).",
            ["outcome"],
            registry=self.registry,
        )
        self.connections_total = Counter(
            "hero_connections_opened", "Hub connections opened.", registry=self.registry
        )
        self.registry.register(_LiveConnections(self))

    def watch_rate_limits(
        self, limiters: Mapping[str, FixedWindowLimiter], endpoint: ConnectionEndpoint | None
    ) -> None:
        """Export the limiters' counts under their names as the `limit` label, and the
        endpoint's refusals by the connections-per-user limit (call once)."""
        self.registry.register(_RateLimits(limiters, endpoint))

    def watch_relay(self, relay: Relay) -> None:
        """Export the request relay's counts (call once)."""
        self.registry.register(_Relay(relay))

    # ConnectionObserver
    def connected(self, connection: HubConnection) -> None:
        self.live[connection.connection_id] = connection
        self.connections_total.inc()

    def disconnected(self, connection: HubConnection) -> None:
        if self.live.pop(connection.connection_id, None) is not None:
            self.closed_messages_sent += connection.messages_sent
            self.closed_ephemeral_dropped += connection.ephemeral_dropped

    def message_received(self, connection: HubConnection, count: int) -> None:
        self.messages_received.inc(count)

    def slow_consumer(self, connection: HubConnection) -> None:
        self.send_queue_drops.inc()

    # InvocationObserver
    def invocation(self, method: str, error: bool) -> None:
        self.invocations.labels(method).inc()
        if error:
            self.invocation_errors.labels(method).inc()

    # LimitObserver
    def group_name_refused(self) -> None:
        self.group_name_refusals.inc()

    def group_limit_reached(self) -> None:
        self.group_limit_refusals.inc()

    def invocation_rate_limited(self, answered: bool) -> None:
        self.invocations_rate_limited.labels("refused" if answered else "dropped").inc()

    # TypingObserver
    def throttled(self) -> None:
        self.throttle_hits.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
