"""Negotiate (docs/protocol.md §2): version selection and the response body."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hero.realtime.protocol.negotiate import (
    MAX_NEGOTIATE_VERSION,
    TRANSFER_FORMATS,
    TRANSPORT_ORDER,
    NegotiateResponse,
    NegotiateVersionError,
    encode_negotiate_error,
    select_version,
)

NON_INTEGER = "The client requested a non-integer protocol version."


def _unsupported(version: int | str) -> str:
    return (
        f"The client requested version '{version}', but the server does not support this version."
    )


ALL_TRANSPORTS_JSON = (
    b'[{"transport":"WebSockets","transferFormats":["Text","Binary"]},'
    b'{"transport":"ServerSentEvents","transferFormats":["Text"]},'
    b'{"transport":"LongPolling","transferFormats":["Text","Binary"]}]'
)


# ---------------------------------------------------------------------------------------------
# select_version (section 2.2)
# ---------------------------------------------------------------------------------------------


def test_checklist_2_missing_version_is_0() -> None:
    """Checklist 2: pysignalr and signalrcore send no negotiateVersion → version 0."""
    assert select_version({}) == 0
    assert select_version({"id": "x", "_": "123"}) == 0


@pytest.mark.parametrize(("raw", "expected"), [("0", 0), ("1", 1)])
def test_checklist_1_versions_0_and_1_are_answered_as_is(raw: str, expected: int) -> None:
    """Checklist 1: the JS client sends negotiateVersion=1."""
    assert select_version({"negotiateVersion": raw}) == expected


@pytest.mark.parametrize("raw", ["2", "5", "100", "2147483647"])
def test_checklist_3_higher_versions_answered_with_1(raw: str) -> None:
    """Checklist 3: negotiateVersion=5 → 1 (the server's maximum)."""
    assert select_version({"negotiateVersion": raw}) == 1
    assert MAX_NEGOTIATE_VERSION == 1


@pytest.mark.parametrize("raw", ["abc", "", "1.0", "1.5", "one", "1a", "0x1", "1e0", "true"])
def test_checklist_4_non_integer_exact_error_text(raw: str) -> None:
    """Checklist 4: `abc` (or any non-integer) → exactly this error text."""
    with pytest.raises(NegotiateVersionError) as info:
        select_version({"negotiateVersion": raw})
    assert str(info.value) == NON_INTEGER


@pytest.mark.parametrize(
    "key", ["negotiateVersion", "NegotiateVersion", "negotiateversion", "NEGOTIATEVERSION"]
)
def test_query_key_is_case_insensitive(key: str) -> None:
    """Section 2.1: ASP.NET reads query keys case-insensitively."""
    assert select_version({key: "1"}) == 1
    assert select_version({key: "7"}) == 1
    with pytest.raises(NegotiateVersionError, match="non-integer"):
        select_version({key: "abc"})


def test_other_query_parameters_are_ignored() -> None:
    """Checklist 11: unknown parameters (`_`, app parameters, access_token) are ignored."""
    query = {"_": "1700000000", "access_token": "abc", "room": "x", "negotiateVersion": "1"}
    assert select_version(query) == 1


def test_negative_version_is_below_the_minimum() -> None:
    with pytest.raises(NegotiateVersionError) as info:
        select_version({"negotiateVersion": "-1"})
    assert str(info.value) == _unsupported(-1)


def test_minimum_version_rejects_lower_requests() -> None:
    with pytest.raises(NegotiateVersionError) as info:
        select_version({"negotiateVersion": "0"}, minimum=1)
    assert str(info.value) == _unsupported(0)
    assert select_version({"negotiateVersion": "1"}, minimum=1) == 1
    assert select_version({"negotiateVersion": "9"}, minimum=1) == 1


def test_minimum_version_with_missing_parameter_says_0() -> None:
    """Section 2.2: for a missing parameter the text says `'0'`."""
    with pytest.raises(NegotiateVersionError) as info:
        select_version({}, minimum=1)
    assert str(info.value) == _unsupported(0)


def test_whitespace_and_sign_are_accepted_like_int_tryparse() -> None:
    """.NET int.TryParse (NumberStyles.Integer) allows surrounding white space and a sign."""
    assert select_version({"negotiateVersion": " 1 "}) == 1
    assert select_version({"negotiateVersion": "+1"}) == 1
    assert select_version({"negotiateVersion": "01"}) == 1


@pytest.mark.parametrize("raw", ["1_0", "\u0661", "2147483648", "99999999999999999999"])
def test_non_dotnet_integers_are_non_integer(raw: str) -> None:
    with pytest.raises(NegotiateVersionError) as info:
        select_version({"negotiateVersion": raw})
    assert str(info.value) == NON_INTEGER


def test_negotiate_version_error_is_a_value_error() -> None:
    assert issubclass(NegotiateVersionError, ValueError)


@given(st.integers(min_value=0, max_value=2**31 - 1))
@settings(deadline=None)
def test_select_version_is_min_of_request_and_1(version: int) -> None:
    assert select_version({"negotiateVersion": str(version)}) == min(version, 1)


# ---------------------------------------------------------------------------------------------
# encode_negotiate_error (section 2.2)
# ---------------------------------------------------------------------------------------------


def test_checklist_4_error_body_exact() -> None:
    """Checklist 4: body exactly `{"error":"<text>"}` and nothing else."""
    assert encode_negotiate_error(NON_INTEGER) == (
        b'{"error":"The client requested a non-integer protocol version."}'
    )


def test_error_body_for_unsupported_version() -> None:
    assert encode_negotiate_error(_unsupported(-1)) == (
        b'{"error":"The client requested version \'-1\', but the server does not support '
        b'this version."}'
    )


# ---------------------------------------------------------------------------------------------
# NegotiateResponse (section 2.3)
# ---------------------------------------------------------------------------------------------


def test_checklist_1_v1_response_exact_bytes() -> None:
    """Checklist 1/5: v1 has connectionToken; transports in the .NET order; .NET key order."""
    body = NegotiateResponse(version=1, connection_id="pub", connection_token="sec").encode()
    assert body == (
        b'{"negotiateVersion":1,"connectionId":"pub","connectionToken":"sec",'
        b'"availableTransports":' + ALL_TRANSPORTS_JSON + b"}"
    )


def test_checklist_2_v0_response_has_no_connection_token() -> None:
    """Checklist 2: v0 writes negotiateVersion 0 and connectionId, never connectionToken."""
    body = NegotiateResponse(version=0, connection_id="pub", connection_token="sec").encode()
    assert body == (
        b'{"negotiateVersion":0,"connectionId":"pub","availableTransports":'
        + ALL_TRANSPORTS_JSON
        + b"}"
    )
    decoded = json.loads(body)
    assert "connectionToken" not in decoded
    assert b"sec" not in body


def test_negotiate_version_is_always_an_integer() -> None:
    """signalrcore requires negotiateVersion to be an integer (section 2.3)."""
    for version in (0, 1):
        decoded = json.loads(NegotiateResponse(version, "a", "b").encode())
        assert type(decoded["negotiateVersion"]) is int
        assert decoded["negotiateVersion"] == version


def test_checklist_5_transports_order_and_formats() -> None:
    """Checklist 5: WebSockets ["Text","Binary"], ServerSentEvents ["Text"],
    LongPolling ["Text","Binary"], in that order; Text before Binary (signalrcore)."""
    decoded = json.loads(NegotiateResponse(1, "a", "b").encode())
    assert decoded["availableTransports"] == [
        {"transport": "WebSockets", "transferFormats": ["Text", "Binary"]},
        {"transport": "ServerSentEvents", "transferFormats": ["Text"]},
        {"transport": "LongPolling", "transferFormats": ["Text", "Binary"]},
    ]
    assert TRANSPORT_ORDER == ("WebSockets", "ServerSentEvents", "LongPolling")
    assert TRANSFER_FORMATS == {
        "WebSockets": ["Text", "Binary"],
        "ServerSentEvents": ["Text"],
        "LongPolling": ["Text", "Binary"],
    }


@pytest.mark.parametrize(
    ("enabled", "expected"),
    [
        (("LongPolling", "WebSockets"), ["WebSockets", "LongPolling"]),
        (("LongPolling", "ServerSentEvents"), ["ServerSentEvents", "LongPolling"]),
        (("ServerSentEvents",), ["ServerSentEvents"]),
        (("LongPolling",), ["LongPolling"]),
        (("WebSockets",), ["WebSockets"]),
        (
            ("LongPolling", "ServerSentEvents", "WebSockets"),
            ["WebSockets", "ServerSentEvents", "LongPolling"],
        ),
    ],
)
def test_checklist_5_disabled_transports_are_omitted_order_kept(
    enabled: tuple[str, ...], expected: list[str]
) -> None:
    """Checklist 5: disabled transports are omitted; the order stays the .NET order."""
    decoded = json.loads(NegotiateResponse(1, "a", "b", transports=enabled).encode())
    assert [t["transport"] for t in decoded["availableTransports"]] == expected
    for entry in decoded["availableTransports"]:
        assert entry["transferFormats"] == TRANSFER_FORMATS[entry["transport"]]
        assert set(entry) == {"transport", "transferFormats"}


def test_unknown_transport_names_are_not_emitted() -> None:
    decoded = json.loads(
        NegotiateResponse(1, "a", "b", transports=("WebTransport", "LongPolling")).encode()
    )
    assert decoded["availableTransports"] == [
        {"transport": "LongPolling", "transferFormats": ["Text", "Binary"]}
    ]


def test_checklist_6_use_stateful_reconnect_only_when_set() -> None:
    """Checklist 6: `useStatefulReconnect:true` appears only when set, and first (.NET order)."""
    plain = NegotiateResponse(1, "a", "b").encode()
    assert b"useStatefulReconnect" not in plain
    stateful = NegotiateResponse(1, "a", "b", use_stateful_reconnect=True).encode()
    assert stateful == (
        b'{"useStatefulReconnect":true,"negotiateVersion":1,"connectionId":"a",'
        b'"connectionToken":"b","availableTransports":' + ALL_TRANSPORTS_JSON + b"}"
    )
    assert json.loads(stateful)["useStatefulReconnect"] is True


def test_use_stateful_reconnect_false_is_omitted_not_written_false() -> None:
    body = NegotiateResponse(1, "a", "b", use_stateful_reconnect=False).encode()
    assert "useStatefulReconnect" not in json.loads(body)


def test_response_uses_only_spec_keys_and_never_protocol_version() -> None:
    """Section 2.5: a `ProtocolVersion` key makes the JS client reject the server."""
    for version in (0, 1):
        for stateful in (False, True):
            decoded = json.loads(
                NegotiateResponse(version, "a", "b", use_stateful_reconnect=stateful).encode()
            )
            assert set(decoded) <= {
                "useStatefulReconnect",
                "negotiateVersion",
                "connectionId",
                "connectionToken",
                "availableTransports",
            }
            assert "ProtocolVersion" not in decoded
            assert "error" not in decoded


def test_response_is_compact_json() -> None:
    body = NegotiateResponse(1, "a", "b").encode()
    assert b" " not in body
    assert b"\n" not in body


@given(
    version=st.sampled_from([0, 1]),
    connection_id=st.text(min_size=1, max_size=30),
    token=st.text(min_size=1, max_size=30),
    transports=st.lists(st.sampled_from(TRANSPORT_ORDER), unique=True),
    stateful=st.booleans(),
)
@settings(deadline=None)
def test_response_structure_property(
    version: int, connection_id: str, token: str, transports: list[str], stateful: bool
) -> None:
    decoded = json.loads(
        NegotiateResponse(
            version, connection_id, token, tuple(transports), use_stateful_reconnect=stateful
        ).encode()
    )
    assert decoded["negotiateVersion"] == version
    assert decoded["connectionId"] == connection_id
    assert ("connectionToken" in decoded) == (version > 0)
    if version > 0:
        assert decoded["connectionToken"] == token
    assert ("useStatefulReconnect" in decoded) == stateful
    names = [t["transport"] for t in decoded["availableTransports"]]
    assert names == [name for name in TRANSPORT_ORDER if name in transports]
