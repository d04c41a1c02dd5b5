"""The stateful-reconnect buffer (docs/protocol.md §8.2): what one side must be able to replay.

Trackable messages (Invocation, StreamItem, Completion, StreamInvocation, CancelInvocation)
are numbered 1, 2, 3, ... in each direction; the numbers are implied by order and appear
only in Ack and Sequence messages. Sent messages stay here, as framed bytes, until the
client acknowledges them; the buffer is bounded in bytes.
"""

from __future__ import annotations

from collections import deque


class ReplayBuffer:
    """Outgoing: framed bytes by sequence number until acked. Incoming: the counters that
    tell a replayed duplicate from a new message."""

    __slots__ = ("_bytes", "_entries", "_limit", "acked_to_client", "incoming", "processed", "sent")

    def __init__(self, limit_bytes: int) -> None:
        self._entries: deque[tuple[int, bytes]] = deque()
        self._bytes = 0
        self._limit = limit_bytes
        self.sent = 0
        self.incoming = 0
        self.processed = 0
        self.acked_to_client = 0

    @property
    def buffered_bytes(self) -> int:
        return self._bytes

    def record(self, data: bytes) -> bool:
        """Number and keep one sent message. False once the buffer passes its limit (the
        client is not acknowledging: the caller ends the connection)."""
        self.sent += 1
        self._entries.append((self.sent, data))
        self._bytes += len(data)
        return self._bytes <= self._limit

    def acknowledge(self, sequence_id: int) -> None:
        """The client processed everything up to `sequence_id`: forget it."""
        entries = self._entries
        while entries and entries[0][0] <= sequence_id:
            self._bytes -= len(entries.popleft()[1])

    def first_unacknowledged(self) -> int:
        """The Sequence value to send on resume: the first message about to be replayed,
        or the next number when nothing is buffered."""
        return self._entries[0][0] if self._entries else self.sent + 1

    def unacknowledged(self) -> list[bytes]:
        return [data for _, data in self._entries]

    def accept_incoming(self) -> bool:
        """Count one incoming trackable message; False for a replayed duplicate."""
        self.incoming += 1
        if self.incoming <= self.processed:
            return False
        self.processed = self.incoming
        return True

    def client_sequence(self, sequence_id: int) -> bool:
        """The client's Sequence after a resume. False (fatal) when it claims messages
        beyond what was received."""
        if sequence_id > self.processed + 1:
            return False
        self.incoming = sequence_id - 1
        return True

    def ack_due(self) -> int | None:
        """The number to acknowledge, when new messages were processed since the last Ack."""
        if self.processed > self.acked_to_client:
            self.acked_to_client = self.processed
            return self.processed
        return None
