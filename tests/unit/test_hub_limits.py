"""The hub limits' parts: the token bucket (on a hand-moved clock), the option checks, the
platform settings that feed them, and the conformance server's rate default."""

from __future__ import annotations

import pytest

from hero.platform.app import hub_options
from hero.platform.conformance import conformance_options
from hero.platform.settings import SettingsError, load_settings
from hero.realtime import HubOptions
from hero.realtime.hubs.group_names import group_name_problem
from hero.realtime.runtime import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_full_bucket_allows_the_burst_then_refills_at_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.now += 0.25  # half a token
    assert not bucket.take()
    clock.now += 0.25  # one whole token
    assert bucket.take()
    assert not bucket.take()
    clock.now += 60  # saved up, but never more than the burst
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


def test_a_bucket_needs_a_rate_and_a_burst() -> None:
    for rate, burst in ((0.0, 1), (-1.0, 1), (1.0, 0)):
        with pytest.raises(ValueError, match="positive rate"):
            TokenBucket(rate, burst)


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("maximum_group_name_length", 0, "at least 1"),
        ("maximum_groups_per_connection", -1, "must not be negative"),
        ("maximum_invocations_per_second", -0.5, "must not be negative"),
        ("maximum_invocations_per_second", float("nan"), "must not be negative"),
        ("invocation_burst", 0, "at least 1"),
    ],
)
def test_hub_options_refuse_impossible_limits(field: str, value: float, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        HubOptions(**{field: value})  # type: ignore[arg-type]


def test_library_defaults() -> None:
    options = HubOptions()
    assert options.maximum_group_name_length == 256
    assert options.maximum_groups_per_connection == 1000
    assert options.maximum_invocations_per_second == 0  # no limit for library hubs
    assert options.invocation_burst == 40


def test_control_characters_are_c0_del_and_c1_only() -> None:
    for code in (*range(0x20), *range(0x7F, 0xA0)):
        assert group_name_problem(f"a{chr(code)}", 256) is not None, hex(code)
    for text in (" ", "~", "\u00a0", "é", "\u2028", "💬"):
        assert group_name_problem(f"a{text}", 256) is None, repr(text)


def test_platform_settings_feed_the_hub_options() -> None:
    defaults = hub_options(load_settings(None, {})).hub
    assert defaults.maximum_group_name_length == 256
    assert defaults.maximum_groups_per_connection == 1000
    assert defaults.maximum_invocations_per_second == 20
    assert defaults.invocation_burst == 40
    settings = load_settings(
        None,
        {
            "Realtime__MaximumGroupNameLength": "64",
            "Realtime__MaximumGroupsPerConnection": "0",
            "Realtime__MaximumInvocationsPerSecond": "2.5",
            "Realtime__InvocationBurst": "5",
        },
    )
    options = hub_options(settings).hub
    assert options.maximum_group_name_length == 64
    assert options.maximum_groups_per_connection == 0
    assert options.maximum_invocations_per_second == 2.5
    assert options.invocation_burst == 5


def test_stateful_reconnect_is_offered_unless_switched_off() -> None:
    assert hub_options(load_settings(None, {})).endpoint.allow_stateful_reconnects
    settings = load_settings(None, {"Realtime__AllowStatefulReconnects": "false"})
    assert not hub_options(settings).endpoint.allow_stateful_reconnects


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("MaximumGroupNameLength", "0"),
        ("MaximumGroupsPerConnection", "-1"),
        ("MaximumGroupsPerConnection", "many"),
        ("MaximumInvocationsPerSecond", "-1"),
        ("MaximumInvocationsPerSecond", "inf"),
        ("InvocationBurst", "0"),
    ],
)
def test_bad_limit_settings_name_their_key(key: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(None, {f"Realtime__{key}": value})
    assert f"Realtime:{key}" in str(caught.value)


def test_the_conformance_server_has_no_rate_limit_unless_one_is_set() -> None:
    assert conformance_options(load_settings(None, {})).hub.maximum_invocations_per_second == 0
    chosen = load_settings(None, {"Realtime__MaximumInvocationsPerSecond": "20"})
    assert conformance_options(chosen).hub.maximum_invocations_per_second == 20
