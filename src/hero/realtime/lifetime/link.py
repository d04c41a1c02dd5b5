"""What every Valkey backplane variant shares: its error and the state of its subscriber."""

from __future__ import annotations

import time

__all__ = ["MAX_RETRY_BACKOFF", "BackplaneError", "SubscriberLink"]


class BackplaneError(Exception):
    """A backplane operation could not complete (no ack in time, Valkey unreachable)."""


MAX_RETRY_BACKOFF = 1.0
"""Longest pause between two attempts of a subscriber to reach Valkey again (seconds)."""


class SubscriberLink:
    """Whether this instance's subscriber is connected to Valkey, and for how long.

    Two states: *down* (the last read failed) and *up since t*. Sends are refused while the
    link is down and for `grace` seconds after it came back: every instance's subscriber
    retries at least every `MAX_RETRY_BACKOFF` seconds, so by then the other instances are
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
