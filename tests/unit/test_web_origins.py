"""hero.web's origin rules: the CORS allow-list and the WebSocket upgrade's same-origin."""

from __future__ import annotations

from typing import Any

import pytest

from hero.web import (
    normalize_origin,
    origin_allowed_for,
    origin_checker,
    request_origin,
)


def _scope(scheme: str, host: str | None) -> dict[str, Any]:
    headers = [(b"origin", b"ignored")]
    if host is not None:
        headers.append((b"host", host.encode()))
    return {"type": "websocket", "scheme": scheme, "headers": headers}


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        ("https://x.example", "https://x.example"),
        ("https://x.example:443", "https://x.example"),
        ("http://x.example:80", "http://x.example"),
        ("HTTP://X.Example:8080/", "http://x.example:8080"),
        ("https://x.example:80", "https://x.example:80"),
        ("http://[::1]:80", "http://[::1]"),
        ("null", None),
        ("ws://x.example", None),
        ("https://x.example/path", None),
        ("https://u@x.example", None),
        ("https://x.example:notaport", None),
    ],
)
def test_normalize_origin(origin: str, expected: str | None) -> None:
    assert normalize_origin(origin) == expected


def test_the_allow_list_ignores_default_ports_on_both_sides() -> None:
    check = origin_checker(("https://app.example.com:443", "http://dev.example.com"), False)
    assert check("https://app.example.com")
    assert check("https://app.example.com:443")
    assert check("http://dev.example.com:80")
    assert not check("https://app.example.com:8443")
    assert not check("http://app.example.com")
    assert not check("null")
    assert origin_checker((), True)("https://anything.example")


@pytest.mark.parametrize(
    ("scheme", "host", "expected"),
    [
        ("ws", "hero.example:8000", "http://hero.example:8000"),
        ("wss", "Hero.Example:443", "https://hero.example"),
        ("wss", "hero.example", "https://hero.example"),
        ("ws", "[::1]:80", "http://[::1]"),
        ("http", "hero.example", "http://hero.example"),
        ("ws", None, None),
        ("ws", "hero.example/evil", None),
    ],
)
def test_request_origin(scheme: str, host: str | None, expected: str | None) -> None:
    assert request_origin(_scope(scheme, host)) == expected


def test_websocket_upgrades_also_accept_the_requests_own_origin() -> None:
    check = origin_allowed_for(origin_checker(("https://app.example.com",), False))
    page = _scope("ws", "127.0.0.1:8000")
    assert check("http://127.0.0.1:8000", page)  # the demo page at / on the same host
    assert check("https://app.example.com", page)  # the allow-list still applies
    assert not check("https://127.0.0.1:8000", page)  # another scheme is another origin
    assert not check("http://127.0.0.1:8001", page)
    assert not check("http://evil.example", page)
    assert not check("null", page)
    assert not check("http://127.0.0.1:8000", _scope("ws", None))
    assert check("https://hero.example", _scope("wss", "hero.example:443"))


def test_without_the_scope_only_the_allow_list_applies() -> None:
    check = origin_allowed_for(origin_checker(("https://app.example.com",), False))
    assert check("https://app.example.com")
    assert not check("http://127.0.0.1:8000")
