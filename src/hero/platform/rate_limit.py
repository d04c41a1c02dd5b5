"""A fixed-window rate limiter keyed per client, with a bounded number of keys.

Each key (a user, a client address) gets a window that starts at its first request and lasts
`window` seconds; at most `permit_limit` requests pass in it (ASP.NET Core's fixed-window
limiter, partitioned per client). A refused request learns how long until its window ends:
the `Retry-After` of the 429.

Memory stays bounded under a flood of distinct keys: windows are kept oldest first, ended
ones are dropped as new keys arrive, and past `max_keys` the oldest live window is dropped
too (counted in `evictions`: that client starts afresh, the only cost of the bound).
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class _Window:
    start: float
    count: int


class FixedWindowLimiter:
    """`acquire(key)` takes one permit from `key`'s current window."""

    def __init__(
        self,
        permit_limit: int,
        window: float,
        *,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if permit_limit < 1 or window <= 0 or max_keys < 1:
            raise ValueError("permit_limit, window and max_keys must be positive")
        self.permit_limit = permit_limit
        self.window = window
        self.max_keys = max_keys
        self._clock = clock
        self._windows: OrderedDict[str, _Window] = OrderedDict()
        self.rejections = 0
        """Requests refused so far."""
        self.evictions = 0
        """Windows dropped before their end to keep at most `max_keys`."""

    def __len__(self) -> int:
        return len(self._windows)

    def acquire(self, key: str) -> float | None:
        """None when the request may proceed; otherwise the seconds until `key`'s window
        ends (positive), and nothing is counted against the window."""
        now = self._clock()
        window = self._windows.get(key)
        if window is None:
            self._make_room(now)
            window = self._windows[key] = _Window(now, 0)
        elif now - window.start >= self.window:
            window.start, window.count = now, 0
            self._windows.move_to_end(key)  # keeps the dict ordered by window start
        if window.count >= self.permit_limit:
            self.rejections += 1
            return max(window.start + self.window - now, 1e-3)
        window.count += 1
        return None

    def _make_room(self, now: float) -> None:
        windows = self._windows
        while windows:
            oldest = next(iter(windows.values()))
            if now - oldest.start >= self.window:
                windows.popitem(last=False)  # ended: forgetting it changes nothing
            elif len(windows) >= self.max_keys:
                windows.popitem(last=False)
                self.evictions += 1
            else:
                return


def retry_after_header(seconds: float) -> str:
    """`Retry-After` in whole seconds, rounded up (at least 1)."""
    return str(max(1, math.ceil(seconds)))


def client_address(scope: Any) -> str:
    """The key of the client address: the ASGI `client` host, which the server has already
    rewritten from `X-Forwarded-For` when the peer is a trusted proxy (uvicorn's
    `--forwarded-allow-ips`); nothing here reads forwarding headers. An IPv6 address counts as
    its /64 network (one host usually holds a whole /64); an IPv4-mapped one as the IPv4
    address. `unknown` when the server gives no address (a Unix socket)."""
    client = scope.get("client")
    host = client[0] if client else None
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return str(host)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
