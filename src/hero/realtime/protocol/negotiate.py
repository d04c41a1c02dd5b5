"""Negotiate responses, versions 0 and 1 (docs/protocol.md §2)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import msgspec

MAX_NEGOTIATE_VERSION = 1

TRANSPORT_ORDER = ("WebSockets", "ServerSentEvents", "LongPolling")
TRANSFER_FORMATS: dict[str, list[str]] = {
    "WebSockets": ["Text", "Binary"],
    "ServerSentEvents": ["Text"],
    "LongPolling": ["Text", "Binary"],
}


class NegotiateVersionError(ValueError):
    """The requested negotiate version cannot be served; the text is sent as `error`."""


_INT32 = re.compile(r"[ \t]*[+-]?[0-9]+[ \t]*")


def _int32(text: str) -> int | None:
    """Parse like .NET's int.TryParse: ASCII digits, optional sign, 32-bit range."""
    if not _INT32.fullmatch(text):
        return None
    value = int(text)
    if not -(2**31) <= value < 2**31:
        return None
    return value


def select_version(query: Mapping[str, str], minimum: int = 0) -> int:
    """Pick the negotiate version from the query (keys matched case-insensitively)."""
    raw: str | None = None
    for key, value in query.items():
        if key.lower() == "negotiateversion":
            raw = value
            break
    if raw is None:
        if minimum > 0:
            raise NegotiateVersionError(
                "The client requested version '0', but the server does not support this version."
            )
        return 0
    requested = _int32(raw)
    if requested is None:
        raise NegotiateVersionError("The client requested a non-integer protocol version.")
    if requested < minimum:
        raise NegotiateVersionError(
            f"The client requested version '{requested}', but the server does not support "
            "this version."
        )
    return min(requested, MAX_NEGOTIATE_VERSION)


@dataclass(frozen=True, slots=True)
class NegotiateResponse:
    version: int
    connection_id: str
    connection_token: str
    transports: tuple[str, ...] = TRANSPORT_ORDER
    use_stateful_reconnect: bool = False

    def encode(self) -> bytes:
        body: dict[str, object] = {}
        if self.use_stateful_reconnect:
            body["useStatefulReconnect"] = True
        body["negotiateVersion"] = self.version
        body["connectionId"] = self.connection_id
        if self.version > 0:
            body["connectionToken"] = self.connection_token
        body["availableTransports"] = [
            {"transport": name, "transferFormats": TRANSFER_FORMATS[name]}
            for name in TRANSPORT_ORDER
            if name in self.transports
        ]
        return msgspec.json.encode(body)


def encode_negotiate_error(text: str) -> bytes:
    """HTTP 200 body `{"error":"<text>"}`: the JS client rejects `start()` with that text."""
    return msgspec.json.encode({"error": text})
