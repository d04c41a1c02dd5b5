"""SerializedMessage: a message encoded at most once per hub protocol (habit 4)."""

from __future__ import annotations

from hero.realtime.protocol.base import HubProtocol
from hero.realtime.protocol.messages import EphemeralInvocationMessage, HubMessage


class SerializedMessage:
    """Holds one message and its framed bytes per protocol name, filled lazily.

    A broadcast builds one of these and hands it to every recipient; each recipient asks for
    its protocol's bytes, so the encoder runs once per protocol, never once per recipient.
    A backplane can pre-fill it with bytes received from another instance.
    """

    __slots__ = ("_cache", "droppable", "message")

    def __init__(
        self,
        message: HubMessage | None,
        encoded: dict[str, bytes] | None = None,
        *,
        droppable: bool = False,
    ) -> None:
        self.message = message
        self._cache: dict[str, bytes] = dict(encoded) if encoded else {}
        self.droppable = droppable or isinstance(message, EphemeralInvocationMessage)
        """An ephemeral message: a recipient that is behind may drop it (see
        `EphemeralInvocationMessage`)."""

    def get(self, protocol: HubProtocol) -> bytes:
        data = self._cache.get(protocol.name)
        if data is None:
            if self.message is None:
                raise LookupError(f"no bytes for protocol {protocol.name!r}")
            data = protocol.write(self.message)
            self._cache[protocol.name] = data
        return data

    def encoded(self) -> dict[str, bytes]:
        """The bytes produced so far, by protocol name."""
        return dict(self._cache)
