"""The `RateLimiting` section: defaults, nested keys from a file and the environment, and
one-line errors naming the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hero.platform.settings import SettingsError, load_settings


def test_defaults() -> None:
    limits = load_settings().rate_limiting
    assert limits.enabled is True
    assert (limits.negotiate.permit_limit, limits.negotiate.window_seconds) == (100, 10.0)
    assert (limits.rest.permit_limit, limits.rest.window_seconds) == (300, 10.0)
    assert limits.maximum_connections_per_user == 100
    assert limits.maximum_tracked_clients == 10_000


def test_nested_keys_from_the_file_and_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "appsettings.json"
    config.write_text(
        json.dumps(
            {
                "RateLimiting": {
                    "Enabled": False,
                    "Negotiate": {"PermitLimit": 7, "WindowSeconds": 1.5},
                    "Rest": {"PermitLimit": 50},
                    "MaximumConnectionsPerUser": 5,
                }
            }
        )
    )
    limits = load_settings(config, {"ratelimiting__rest__windowseconds": "30"}).rate_limiting
    assert limits.enabled is False
    assert (limits.negotiate.permit_limit, limits.negotiate.window_seconds) == (7, 1.5)
    assert (limits.rest.permit_limit, limits.rest.window_seconds) == (50, 30.0)
    assert limits.maximum_connections_per_user == 5


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        (
            "RateLimiting__Negotiate__PermitLimit",
            "0",
            "RateLimiting:Negotiate:PermitLimit: value must be a positive integer (got '0')",
        ),
        (
            "RateLimiting__Rest__WindowSeconds",
            "-1",
            "RateLimiting:Rest:WindowSeconds: value must be a positive number of seconds "
            "(got '-1')",
        ),
        (
            "RateLimiting__MaximumConnectionsPerUser",
            "lots",
            "RateLimiting:MaximumConnectionsPerUser: value must be a positive integer (got 'lots')",
        ),
        (
            "RateLimiting__Enabled",
            "off",
            "RateLimiting:Enabled: value must be true or false (got 'off')",
        ),
    ],
)
def test_bad_values_name_the_key(name: str, value: str, expected: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(None, {name: value})
    assert str(info.value) == expected
