"""Who a connection belongs to and which transport carries it: the public value types that
applications see (`Identity` from an authenticator, `TransportKind` in metrics)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from hero.realtime.protocol import TransferFormat


class TransportKind(StrEnum):
    """Transport names as they appear in negotiate responses."""

    WEBSOCKETS = "WebSockets"
    SERVER_SENT_EVENTS = "ServerSentEvents"
    LONG_POLLING = "LongPolling"

    @property
    def formats(self) -> TransferFormat:
        if self is TransportKind.SERVER_SENT_EVENTS:
            return TransferFormat.TEXT
        return TransferFormat.TEXT | TransferFormat.BINARY


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is on the other end, captured once when the connection is created.

    `user_id` feeds user targeting (`clients.user(...)`); `principal` is whatever the
    application's authenticator produced; `expires_at` (epoch seconds) is when the credential
    stops being valid: the hub closes the connection then, with `allowReconnect`.
    """

    user_id: str | None = None
    principal: Any = None
    expires_at: float | None = None
    claims: dict[str, Any] = field(default_factory=dict)


ANONYMOUS = Identity()
