"""Public test kit: in-process client, ConformanceHub, lifetime-manager conformance suite."""

from hero.realtime.testing.client import (
    HubConnectionError,
    HubInvocationError,
    HubTestClient,
    LifespanError,
    lifespan,
)
from hero.realtime.testing.conformance import ConformanceHub

__all__ = [
    "ConformanceHub",
    "HubConnectionError",
    "HubInvocationError",
    "HubTestClient",
    "LifespanError",
    "lifespan",
]
