"""The opening handshake hero answers itself (hero.platform.ws_upgrade)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from hero.platform.ws_upgrade import (
    accept_value,
    switching_protocols,
    upgrade_key,
    websocket_scope,
)

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 §1.3's example


def scope(*extra: tuple[bytes, bytes], method: str = "GET", version: str = "1.1") -> Any:
    headers = [
        (b"host", b"localhost"),
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-key", KEY),
        (b"sec-websocket-version", b"13"),
        *extra,
    ]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "method": method,
        "http_version": version,
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
        "headers": headers,
        "state": {},
    }


def replaced(name: bytes, value: bytes | None) -> Any:
    base = scope()
    base["headers"] = [(n, v) for n, v in base["headers"] if n != name]
    if value is not None:
        base["headers"].append((name, value))
    return base


def test_the_accept_value_of_the_rfc_example() -> None:
    assert accept_value(KEY) == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_a_plain_handshake_is_answered_by_hero() -> None:
    assert upgrade_key(scope(), b"/hub?id=1", compression=False) == KEY
    assert upgrade_key(scope((b"content-length", b"0")), b"/hub", compression=False) == KEY
    assert upgrade_key(replaced(b"upgrade", b"WebSocket"), b"/hub", compression=False) == KEY


def test_an_extension_offer_is_ignored_only_while_compression_is_off() -> None:
    offer = (b"sec-websocket-extensions", b"permessage-deflate; client_max_window_bits")
    assert upgrade_key(scope(offer), b"/hub", compression=False) == KEY
    assert upgrade_key(scope(offer), b"/hub", compression=True) is None
    assert upgrade_key(scope(), b"/hub", compression=True) == KEY


@pytest.mark.parametrize(
    ("request_scope", "url"),
    [
        (scope(method="POST"), b"/hub"),
        (scope(version="1.0"), b"/hub"),
        (scope(), b"http://localhost/hub"),
        (scope(), "/h\u00fcb".encode()),
        (scope((b"sec-websocket-key", KEY)), b"/hub"),
        (scope((b"upgrade", b"websocket")), b"/hub"),
        (scope((b"sec-websocket-version", b"13")), b"/hub"),
        (replaced(b"sec-websocket-key", None), b"/hub"),
        (replaced(b"sec-websocket-key", b"not base64!"), b"/hub"),
        (replaced(b"sec-websocket-key", base64.b64encode(b"x" * 15)), b"/hub"),
        (replaced(b"sec-websocket-version", b"8"), b"/hub"),
        (replaced(b"sec-websocket-version", None), b"/hub"),
        (replaced(b"upgrade", b"h2c"), b"/hub"),
        (replaced(b"upgrade", b"websocket, h2c"), b"/hub"),
        (scope((b"content-length", b"5")), b"/hub"),
        (scope((b"transfer-encoding", b"chunked")), b"/hub"),
    ],
)
def test_anything_else_is_left_to_websockets(request_scope: Any, url: bytes) -> None:
    assert upgrade_key(request_scope, url, compression=False) is None


def test_the_101_carries_the_accept_default_and_application_headers() -> None:
    response = switching_protocols(KEY, [(b"server", b"uvicorn")], [(b"x-app", b"1")], "signalr.v1")
    head, _, rest = response.partition(b"\r\n\r\n")
    assert rest == b""
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 101 Switching Protocols"
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in lines
    assert b"Upgrade: websocket" in lines and b"Connection: Upgrade" in lines
    assert b"server: uvicorn" in lines and b"x-app: 1" in lines
    assert b"Sec-WebSocket-Protocol: signalr.v1" in lines


def test_a_header_that_would_split_the_response_is_refused() -> None:
    with pytest.raises(ValueError, match="invalid header"):
        switching_protocols(KEY, [], [(b"x-app", b"1\r\nset-cookie: a=b")], None)


def test_the_websocket_scope_matches_uvicorns() -> None:
    http = scope((b"sec-websocket-protocol", b"a, b"), (b"sec-websocket-protocol", b"c"))
    http["root_path"] = "/api"
    made = websocket_scope(http, b"/realtime/hub%20x?id=1&access_token=t", "ws", {"k": 1})
    assert made["type"] == "websocket"
    assert made["path"] == "/api/realtime/hub x"
    assert made["raw_path"] == b"/api/realtime/hub%20x"
    assert made["query_string"] == b"id=1&access_token=t"
    assert made["subprotocols"] == ["a", "b", "c"]
    assert made["scheme"] == "ws" and made["client"] == ("127.0.0.1", 50000)
    assert made["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert made["state"] == {"k": 1} and made["state"] is not http["state"]
    assert made["extensions"] == {"websocket.http.response": {}}
