"""ReplayBuffer: the numbering rules of stateful reconnect (docs/protocol.md §8.2-8.4)."""

from __future__ import annotations

from hero.realtime.runtime.reconnect import ReplayBuffer


def test_worked_example_of_section_8_4() -> None:
    """Server sent #1..#5, the client acked 3; the client sent #1..#2, all processed."""
    server = ReplayBuffer(limit_bytes=10_000)
    for index in range(1, 6):
        assert server.record(f"m{index}".encode())
    server.acknowledge(3)
    for _ in range(2):
        assert server.accept_incoming()
    # Resume: the server announces the first unacknowledged message and replays it all.
    assert server.first_unacknowledged() == 4
    assert server.unacknowledged() == [b"m4", b"m5"]
    # The client's Sequence: nothing buffered on its side, highest sent 2, so 3.
    assert server.client_sequence(3)
    # Its next new message is #3: not a duplicate.
    assert server.accept_incoming()
    assert server.processed == 3


def test_replayed_client_messages_are_counted_but_not_dispatched() -> None:
    buffer = ReplayBuffer(limit_bytes=10_000)
    for _ in range(3):
        assert buffer.accept_incoming()
    # The client had not seen our Ack for #2 and #3: it replays from #2.
    assert buffer.client_sequence(2)
    assert not buffer.accept_incoming()  # #2 again
    assert not buffer.accept_incoming()  # #3 again
    assert buffer.accept_incoming()  # #4 is new
    assert buffer.processed == 4


def test_a_sequence_beyond_what_was_received_is_refused() -> None:
    buffer = ReplayBuffer(limit_bytes=10_000)
    buffer.accept_incoming()
    assert buffer.client_sequence(2)  # next expected
    assert not buffer.client_sequence(5)


def test_acks_are_due_only_for_new_messages_and_bound_the_buffer() -> None:
    buffer = ReplayBuffer(limit_bytes=10)
    assert buffer.ack_due() is None
    buffer.accept_incoming()
    assert buffer.ack_due() == 1
    assert buffer.ack_due() is None
    assert buffer.record(b"12345")
    assert buffer.record(b"12345")
    assert not buffer.record(b"1")  # past the limit: the caller ends the connection
    buffer.acknowledge(3)
    assert buffer.buffered_bytes == 0
    assert buffer.first_unacknowledged() == 4
