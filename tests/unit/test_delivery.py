"""Deliveries as values: round trips through plain JSON data, bad data refused, and
HubContext applying them (memory lifetime manager, real listener)."""

from __future__ import annotations

import json

import pytest

from hero.realtime import (
    Audience,
    AudienceKind,
    Delivery,
    DeliveryFormatError,
    GroupMove,
    HubContext,
    operation_from_wire,
)
from hero.realtime.lifetime import MemoryLifetimeManager

OPERATIONS = [
    Delivery(Audience.all(), "A", (1, "x")),
    Delivery(Audience.all(("c1",)), "A", ()),
    Delivery(Audience.group("channel:1", ("c2", "c3")), "B", ({"k": [1, 2]},)),
    Delivery(Audience.groups(("g1", "g2")), "C", (None,)),
    Delivery(Audience.user("u1"), "D", (True,)),
    Delivery(Audience.users(("u1", "u2")), "E", ()),
    Delivery(Audience.connection("c1"), "F", (1.5,)),
    Delivery(Audience.connections(("c1", "c2")), "G", ()),
    Delivery(Audience.group("channel:1"), "Typing", ({"u": 1},), ephemeral=True),
    GroupMove.add("u1", "channel:1"),
    GroupMove.remove("u1", "channel:1"),
]


@pytest.mark.parametrize("operation", OPERATIONS, ids=repr)
def test_every_operation_survives_json(operation: Delivery | GroupMove) -> None:
    stored = json.loads(json.dumps(operation.to_wire()))
    assert operation_from_wire(stored) == operation


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"op": "nope"},
        {"op": "send", "audience": {"kind": "group", "names": []}, "target": "X"},
        {
            "op": "send",
            "audience": {"kind": "user", "names": ["u"], "excluded": ["c"]},
            "target": "X",
        },
        {"op": "send", "audience": {"kind": "all", "names": []}, "target": ""},
        {"op": "send", "audience": {"kind": "all", "names": []}, "target": "X", "arguments": 5},
        {"op": "send", "audience": {"kind": "everyone"}, "target": "X"},
        {"op": "group", "kind": "toggle", "user": "u", "group": "g"},
        {"op": "send", "audience": {"kind": "all"}, "target": "X", "ephemeral": "yes"},
    ],
)
def test_data_that_is_no_operation_is_refused(data: dict[str, object]) -> None:
    with pytest.raises(DeliveryFormatError):
        operation_from_wire(data)


def test_audience_invariants() -> None:
    with pytest.raises(ValueError):
        Audience(AudienceKind.ALL, ("x",))
    with pytest.raises(ValueError):
        Audience(AudienceKind.USERS, ("u",), ("c",))


def test_the_proxy_spelling_builds_the_same_value() -> None:
    context = HubContext(MemoryLifetimeManager())
    built = context.clients.group_except("g", ["c1"]).delivery("T", 1)
    assert built == Delivery(Audience.group("g", ("c1",)), "T", (1,))


async def test_a_listener_hears_applied_deliveries_and_group_moves() -> None:
    context = HubContext(MemoryLifetimeManager())
    async with context.listen(["user:u1"], targets=["Wanted"]) as listener:
        await context.apply(Delivery(Audience.group("user:u1"), "Other", (0,)))
        await context.apply(Delivery(Audience.group("user:u1"), "Wanted", (1,)))
        await context.apply(Delivery(Audience.group("user:u2"), "Wanted", (2,)))
        message = await listener.next(timeout=5)
        assert message is not None
        assert (message.target, message.arguments) == ("Wanted", (1,))
        assert await listener.next(timeout=0.01) is None


def test_an_ephemeral_send_is_a_droppable_message_on_every_path() -> None:
    """The message class survives the value, the serialised message and the backplane."""
    from hero.realtime.lifetime import envelope
    from hero.realtime.protocol import (
        EphemeralInvocationMessage,
        JsonHubProtocol,
        SerializedMessage,
    )

    durable = Delivery(Audience.group("g"), "T", (1,))
    ephemeral = Delivery(Audience.group("g"), "T", (1,), ephemeral=True)
    assert isinstance(ephemeral.message(), EphemeralInvocationMessage)
    assert not SerializedMessage(durable.message()).droppable
    serialized = SerializedMessage(ephemeral.message())
    assert serialized.droppable
    # On the wire it is a plain Invocation: clients see no difference.
    protocol = JsonHubProtocol()
    assert serialized.get(protocol) == protocol.write(durable.message())
    sent = envelope.EphemeralInvoke("me", [], serialized.encoded())
    received = envelope.decode(envelope.encode(sent))
    assert isinstance(received, envelope.EphemeralInvoke)
    durable = envelope.decode(envelope.encode(envelope.Invoke("me", [], {})))
    assert not isinstance(durable, envelope.EphemeralInvoke)
