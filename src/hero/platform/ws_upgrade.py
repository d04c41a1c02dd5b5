"""The WebSocket opening handshake (RFC 6455 §4.2) answered from the parsed HTTP request.

uvicorn hands an upgrade request to its WebSocket protocol as bytes it rebuilds from what
httptools parsed; `websockets` then parses those bytes again, checks the handshake headers
through its general header grammar, builds a request and a response object and serialises
the response. For the requests every SignalR client sends (GET, HTTP/1.1, one
`Sec-WebSocket-Key`, version 13, no extension hero would take) that is most of the cost of
the upgrade. `upgrade_key` recognises such a request from the headers httptools already
parsed, and `switching_protocols` writes the 101 for it; `websocket_scope` is the ASGI
scope uvicorn would have built. Any other request (another method or version, a malformed
or repeated handshake header, compression offered while hero accepts it) is left to
`websockets`, which answers it exactly as before.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import unquote

ACCEPT_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
"""RFC 6455 §1.3: appended to the client's key before hashing it."""

_HANDSHAKE_HEADERS: Final = frozenset(
    (b"upgrade", b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-extensions")
)


def upgrade_key(scope: Mapping[str, Any], url: bytes, *, compression: bool) -> bytes | None:
    """The `Sec-WebSocket-Key` of an HTTP `scope` (uvicorn's, for a request it upgrades)
    that is a plain RFC 6455 opening handshake; None when `websockets` must judge it.

    Plain: GET of an ASCII path (`url`, as received) over HTTP/1.1, without a body; exactly
    one `Upgrade` (`websocket`), `Sec-WebSocket-Key` (16 bytes in base64) and
    `Sec-WebSocket-Version` (13); `Connection` is not checked here (uvicorn upgrades only
    when it lists `upgrade`).
    An offered extension is fine while compression is off (none is accepted, as
    `websockets` would answer); with compression on, an offer goes to `websockets`, which
    negotiates permessage-deflate.
    """
    if scope.get("method") != "GET" or scope.get("http_version") != "1.1":
        return None
    if not url.startswith(b"/") or not url.isascii():
        return None
    seen: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
            return None  # a body: `websockets` refuses it
        if name in _HANDSHAKE_HEADERS:
            if name in seen:
                return None
            seen[name] = value
    if b"sec-websocket-extensions" in seen and compression:
        return None
    if seen.get(b"upgrade", b"").strip().lower() != b"websocket":
        return None
    if seen.get(b"sec-websocket-version", b"").strip() != b"13":
        return None
    key = seen.get(b"sec-websocket-key", b"").strip()
    try:
        raw = base64.b64decode(key, validate=True)
    except binascii.Error:
        return None
    return key if len(raw) == 16 else None


def accept_value(key: bytes) -> bytes:
    """`Sec-WebSocket-Accept` for `key` (RFC 6455 §4.2.2, item 5.4)."""
    return base64.b64encode(hashlib.sha1(key + ACCEPT_GUID).digest())


def switching_protocols(
    key: bytes,
    default_headers: Iterable[tuple[bytes, bytes]],
    headers: Iterable[tuple[bytes, bytes]],
    subprotocol: str | None,
) -> bytes:
    """The 101 response: the handshake headers, uvicorn's default headers (`server`,
    `date`), the application's `headers` and its chosen subprotocol."""
    lines = [
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_value(key) + b"\r\n"
    ]
    for name, value in (*default_headers, *headers):
        if b"\r" in name or b"\n" in name or b"\r" in value or b"\n" in value:
            raise ValueError(f"invalid header in websocket.accept: {name!r}")
        lines.append(name + b": " + value + b"\r\n")
    if subprotocol:
        lines.append(b"Sec-WebSocket-Protocol: " + subprotocol.encode("latin-1") + b"\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


def websocket_scope(
    http_scope: Mapping[str, Any], url: bytes, scheme: str, app_state: Mapping[str, Any]
) -> dict[str, Any]:
    """The ASGI `websocket` scope of an upgrade request, from its `http` scope and its
    `url` (ASCII, see `upgrade_key`): the keys and values uvicorn's WebSocket protocol
    sets, except that header names stay as httptools gives them (lower case, as ASGI asks)."""
    raw_path, _, query = url.partition(b"?")
    root_path: str = http_scope["root_path"]
    headers: Sequence[tuple[bytes, bytes]] = http_scope["headers"]
    subprotocols: list[str] = []
    for name, value in headers:
        if name == b"sec-websocket-protocol":
            offered = value.decode("latin-1").split(",")
            subprotocols.extend(token.strip() for token in offered if token.strip())
    return {
        "type": "websocket",
        "asgi": {"version": http_scope["asgi"]["version"], "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": scheme,
        "server": http_scope["server"],
        "client": http_scope["client"],
        "root_path": root_path,
        "path": root_path + unquote(raw_path.decode("ascii")),
        "raw_path": root_path.encode("ascii") + raw_path,
        "query_string": query,
        "headers": headers,
        "subprotocols": subprotocols,
        "state": dict(app_state),
        "extensions": {"websocket.http.response": {}},
    }
