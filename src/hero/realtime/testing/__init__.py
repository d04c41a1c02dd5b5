"""Public test kit: in-process client, ConformanceHub, lifetime-manager conformance suite."""

from hero.realtime.testing.conformance import ConformanceHub

__all__ = ["ConformanceHub"]
