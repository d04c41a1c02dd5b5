"""The Valkey backplane's channel names, under the prefix `P = {key_prefix}signalr:{hub}`.

| channel | carries | subscribed by |
|---|---|---|
| `P:all` | broadcasts | every instance |
| `P:group:{name}` | group sends | instances with a local member |
| `P:user:{id}` | user sends, user group moves | instances with a local connection of the user |
| `P:conn:{id}` | sends, group moves and client-result requests for one connection | its owner |
| `P:server:{name}` | acks and client results for requests this instance made | that instance |

On a Valkey Cluster, group moves and client-result requests for another instance's
connections go to that instance's `P:server:{name}` channel instead (valkey.py says why).

On a Valkey Cluster each channel is a shard channel whose hash slot is computed from its whole
name (no hash tag), so channels spread over the shards.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["ChannelKind", "ChannelNames"]


class ChannelKind(Enum):
    ALL = "all"
    GROUP = "group"
    USER = "user"
    CONNECTION = "conn"
    SERVER = "server"


class ChannelNames:
    """Builds and parses the channel names of one hub."""

    def __init__(self, key_prefix: str, hub_name: str) -> None:
        self.prefix = f"{key_prefix}signalr:{hub_name}"
        self._starts = {kind: f"{self.prefix}:{kind.value}:" for kind in ChannelKind}

    def all(self) -> str:
        return f"{self.prefix}:all"

    def group(self, name: str) -> str:
        return self._starts[ChannelKind.GROUP] + name

    def user(self, user_id: str) -> str:
        return self._starts[ChannelKind.USER] + user_id

    def connection(self, connection_id: str) -> str:
        return self._starts[ChannelKind.CONNECTION] + connection_id

    def server(self, name: str) -> str:
        return self._starts[ChannelKind.SERVER] + name

    def parse(self, channel: str) -> tuple[ChannelKind, str] | None:
        """(kind, name) of one of this hub's channels; the name is "" for `P:all`."""
        if channel == self.all():
            return ChannelKind.ALL, ""
        for kind in (ChannelKind.GROUP, ChannelKind.USER, ChannelKind.CONNECTION):
            start = self._starts[kind]
            if channel.startswith(start):
                return kind, channel[len(start) :]
        start = self._starts[ChannelKind.SERVER]
        if channel.startswith(start):
            return ChannelKind.SERVER, channel[len(start) :]
        return None

    def has_owners(self, channel: str) -> bool:
        """Connection and user channels: the ones whose owners a cluster registry tracks."""
        return channel.startswith(
            (self._starts[ChannelKind.CONNECTION], self._starts[ChannelKind.USER])
        )
