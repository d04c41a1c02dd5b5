"""FixedWindowLimiter: permits per window and key, Retry-After, bounded memory; the client
address key."""

from __future__ import annotations

import pytest

from hero.platform.rate_limit import FixedWindowLimiter, client_address, retry_after_header


class Clock:
    """A settable time source (the limiter reads time only through it)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_permits_up_to_the_limit_then_refuses_until_the_window_ends() -> None:
    clock = Clock()
    limiter = FixedWindowLimiter(3, 10.0, clock=clock)
    assert [limiter.acquire("a") for _ in range(3)] == [None, None, None]
    clock.now += 4.0
    assert limiter.acquire("a") == pytest.approx(6.0)  # the window began at the first request
    assert limiter.acquire("a") == pytest.approx(6.0)  # refusals take nothing from the window
    assert limiter.rejections == 2
    clock.now += 6.0
    assert limiter.acquire("a") is None  # a new window
    assert [limiter.acquire("a") for _ in range(2)] == [None, None]
    assert limiter.acquire("a") == pytest.approx(10.0)


def test_keys_have_their_own_windows() -> None:
    clock = Clock()
    limiter = FixedWindowLimiter(1, 10.0, clock=clock)
    assert limiter.acquire("a") is None
    assert limiter.acquire("a") is not None
    assert limiter.acquire("b") is None
    assert limiter.rejections == 1


def test_a_flood_of_distinct_keys_keeps_memory_bounded() -> None:
    clock = Clock()
    limiter = FixedWindowLimiter(5, 60.0, max_keys=100, clock=clock)
    for _ in range(3):
        assert limiter.acquire("steady") is None
    for n in range(20_000):
        limiter.acquire(f"flood-{n}")
        assert len(limiter) <= 100
    assert limiter.evictions == 20_000 + 1 - 100
    # The oldest window went first: the steady client starts afresh (the cost of the bound).
    assert [limiter.acquire("steady") for _ in range(5)] == [None] * 5


def test_ended_windows_are_dropped_without_counting_an_eviction() -> None:
    clock = Clock()
    limiter = FixedWindowLimiter(1, 10.0, max_keys=50, clock=clock)
    for n in range(50):
        limiter.acquire(f"old-{n}")
    clock.now += 10.0
    limiter.acquire("new")
    assert len(limiter) == 1
    assert limiter.evictions == 0


def test_a_key_whose_window_restarts_is_not_the_oldest_any_more() -> None:
    clock = Clock()
    limiter = FixedWindowLimiter(1, 10.0, max_keys=2, clock=clock)
    limiter.acquire("a")
    clock.now += 5.0
    limiter.acquire("b")
    clock.now += 5.0
    limiter.acquire("a")  # a's window ended: a new one starts now, after b's
    limiter.acquire("c")  # full: b's is the oldest live window
    assert limiter.evictions == 1
    assert limiter.acquire("a") is not None  # still limited: its window was kept


@pytest.mark.parametrize(
    ("permit_limit", "window", "max_keys"), [(0, 1.0, 1), (1, 0.0, 1), (1, 1.0, 0)]
)
def test_limits_must_be_positive(permit_limit: int, window: float, max_keys: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        FixedWindowLimiter(permit_limit, window, max_keys=max_keys)


@pytest.mark.parametrize(
    ("seconds", "header"), [(0.001, "1"), (1.0, "1"), (1.2, "2"), (59.99, "60")]
)
def test_retry_after_is_whole_seconds_rounded_up(seconds: float, header: str) -> None:
    assert retry_after_header(seconds) == header


@pytest.mark.parametrize(
    ("client", "key"),
    [
        (("203.0.113.7", 5000), "203.0.113.7"),
        (("2001:db8:1:2:3:4:5:6", 5000), "2001:db8:1:2::/64"),
        (("2001:db8:1:2:ffff::1", 5000), "2001:db8:1:2::/64"),
        (("::ffff:198.51.100.9", 5000), "198.51.100.9"),
        (("not-an-address", 0), "not-an-address"),
        (None, "unknown"),
    ],
)
def test_client_address_key(client: tuple[str, int] | None, key: str) -> None:
    assert client_address({"type": "http", "client": client}) == key


def test_forwarding_headers_are_not_read() -> None:
    scope = {
        "type": "http",
        "client": ("127.0.0.1", 5000),
        "headers": [(b"x-forwarded-for", b"203.0.113.99")],
    }
    assert client_address(scope) == "127.0.0.1"
