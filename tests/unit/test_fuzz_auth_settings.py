"""Fuzz token extraction, JWT validation and the settings binder with arbitrary input.

Property: a value or the documented error (AuthenticationError, SettingsError), nothing else.
The long run of the same targets is `bench/fuzz.py` (docs/reliability.md).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hero.auth import AuthenticationError, JwtValidator, mint_token
from hero.auth.extraction import extract_token
from hero.platform.settings import Settings, SettingsError, load_settings

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEY = "k" * 40
VALIDATOR = JwtValidator("hero.local", "hero.clients", KEY)
USER = uuid.UUID("2b1f8e3c-7d64-4f0a-9a51-0c6f1d2e3b4a")
VALID = mint_token(KEY, "hero.local", "hero.clients", USER, name="n", ttl_seconds=10**6)

header_names = st.sampled_from([b"authorization", b"Authorization", b"cookie"]) | st.binary(
    max_size=10
)
header_values = (
    st.binary(max_size=40)
    | st.builds(lambda t: b"Bearer " + t, st.binary(max_size=30))
    | st.just(b"bearer   ")
)


@given(
    headers=st.lists(st.tuples(header_names, header_values), max_size=4),
    query=st.binary(max_size=60)
    | st.builds(lambda t: b"access_token=" + t, st.binary(max_size=30)),
    path=st.sampled_from(["/realtime/hub", "/Realtime/Hub/negotiate", "/x"]) | st.text(max_size=20),
    root_path=st.sampled_from(["", "/api"]) | st.text(max_size=8),
)
@FUZZ
def test_extract_token_is_a_stripped_token_or_none(
    headers: list[tuple[bytes, bytes]], query: bytes, path: str, root_path: str
) -> None:
    scope = {"headers": headers, "query_string": query, "path": path, "root_path": root_path}
    token = extract_token(scope)
    assert token is None or (token and token == token.strip())


def _mutate(token: str, data: st.DataObject) -> str:
    chars = list(token)
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(chars) - 1))
        chars[index] = data.draw(st.characters(exclude_categories=[]))  # surrogates too
    return "".join(chars)


@given(token=st.text(st.characters(exclude_categories=[]), max_size=200))
@FUZZ
def test_validate_of_any_text_is_refused_with_an_authentication_error(token: str) -> None:
    with pytest.raises(AuthenticationError):
        VALIDATOR.validate(token)


@given(data=st.data())
@FUZZ
def test_validate_of_a_mutated_token_is_a_principal_or_an_authentication_error(
    data: st.DataObject,
) -> None:
    try:
        principal = VALIDATOR.validate(_mutate(VALID, data))
    except AuthenticationError:
        return
    assert principal.user_id == USER  # base64 slack bits: the same claims, still signed


def test_validate_of_a_token_with_a_lone_surrogate_is_malformed() -> None:
    """Regression, found by bench/fuzz.py: PyJWT's UTF-8 encoding raised UnicodeEncodeError."""
    with pytest.raises(AuthenticationError, match="malformed"):
        VALIDATOR.validate(VALID[:20] + "\udfdf" + VALID[21:])


def test_validate_round_trip_of_a_minted_token() -> None:
    assert VALIDATOR.validate(VALID).user_id == USER


# Settings ------------------------------------------------------------------------------------

SECTIONS = ["CachingOptions", "JwtOptions", "Cors", "DatabaseOptions", "Realtime", "Http"]
FIELDS = [
    "Redis",
    "SigningKey",
    "Issuer",
    "AccessTokenMinutes",
    "AllowedOrigins",
    "AllowAll",
    "ConnectionString",
    "Enabled",
    "KeepAliveIntervalSeconds",
    "MaximumReceiveMessageSize",
    "MaxRequestBodySize",
]
keys = st.builds(
    lambda parts, sep: sep.join(parts),
    st.lists(
        st.sampled_from(SECTIONS + FIELDS + ["0", "1", "Environment"]) | st.text(max_size=4),
        min_size=1,
        max_size=4,
    ),
    st.sampled_from(["__", ":"]),
)
values = st.sampled_from(["", "0", "-1", "1e400", "nan", "true", "x:1", "http://a"]) | st.text(
    max_size=12
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(SECTIONS + FIELDS) | st.text(max_size=4), inner, max_size=3
        )
    ),
    max_leaves=12,
)


@given(environ=st.dictionaries(keys, values, max_size=6))
@FUZZ
def test_load_settings_from_any_environment_is_settings_or_a_settings_error(
    environ: dict[str, str],
) -> None:
    with contextlib.suppress(SettingsError):
        assert isinstance(load_settings(None, environ), Settings)


@pytest.fixture(scope="module")
def config_dir() -> object:
    with tempfile.TemporaryDirectory() as directory:
        yield Path(directory)


@given(document=json_values, raw=st.none() | st.binary(max_size=60))
@FUZZ
def test_load_settings_from_any_file_is_settings_or_a_settings_error(
    config_dir: Path, document: object, raw: bytes | None
) -> None:
    path = config_dir / "appsettings.json"
    path.write_bytes(json.dumps(document).encode() if raw is None else raw)
    with contextlib.suppress(SettingsError):
        assert isinstance(load_settings(path, {}), Settings)


# Regressions, found while writing these targets: these raised ValueError / RecursionError.


@pytest.mark.parametrize(
    "text",
    [
        '{"Realtime": {"x": ' + "1" * 5000 + "}}",  # int() refuses > 4300 digits
        '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}",  # json.loads' recursion limit
    ],
)
def test_a_config_file_json_cannot_read_is_a_settings_error(config_dir: Path, text: str) -> None:
    path = config_dir / "appsettings.json"
    path.write_text(text)
    with pytest.raises(SettingsError, match="invalid JSON"):
        load_settings(path, {})


def test_a_config_file_nested_just_below_the_json_limit_is_a_settings_error_or_loads(
    config_dir: Path,
) -> None:
    """_flatten_json recurses deeper than json.loads: somewhere below the decoder's limit
    the flattening ran out of stack."""
    path = config_dir / "appsettings.json"
    for depth in range(900, 1000, 3):
        path.write_text('{"a": ' + "[" * depth + "1" + "]" * depth + "}")
        with contextlib.suppress(SettingsError):
            load_settings(path, {})


def test_a_list_index_of_thousands_of_digits_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="list index is too large"):
        load_settings(None, {"Cors__AllowedOrigins__" + "1" * 5000: "https://a.example"})
