"""Settings: sources, precedence, parsing and one-line errors (docs/platform.md §2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hero.platform.settings import (
    HostEnvironment,
    RedisEndpoint,
    Settings,
    SettingsError,
    generate_signing_key,
    load_settings,
    parse_redis_endpoint,
)

KEY = "k" * 32


def write_config(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "appsettings.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def error_of(config_file: Path | None = None, **environ: str) -> str:
    with pytest.raises(SettingsError) as caught:
        load_settings(config_file, environ)
    text = str(caught.value)
    assert "\n" not in text
    return text


# --- defaults -----------------------------------------------------------------------------


def test_defaults_with_no_configuration() -> None:
    settings = load_settings(None, {})
    assert settings.caching.redis is None
    assert settings.caching.redis_url() is None
    assert settings.jwt.issuer == "hero.local"
    assert settings.jwt.audience == "hero.clients"
    assert settings.jwt.signing_key == ""
    assert settings.jwt.has_signing_key is False
    assert settings.jwt.access_token_minutes == 60
    assert settings.cors.allowed_origins == ()
    assert settings.cors.allow_all is False
    assert settings.database.connection_string == "sqlite+aiosqlite:///hero.db"
    realtime = settings.realtime
    assert realtime.enabled is True
    assert realtime.map is True
    assert realtime.keep_alive_interval_seconds == 15
    assert realtime.client_timeout_interval_seconds == 30
    assert realtime.handshake_timeout_seconds == 15
    assert realtime.maximum_receive_message_size == 32768
    assert realtime.enable_detailed_errors is False
    assert settings.http.max_request_body_size == 1_048_576
    assert settings.environment is HostEnvironment.DEVELOPMENT
    assert settings.is_production is False
    assert settings == Settings()


def test_environ_defaults_to_empty_and_os_environ_is_not_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("Realtime__KeepAliveIntervalSeconds", "abc")
    assert load_settings(None, None).realtime.keep_alive_interval_seconds == 15


def test_settings_are_immutable() -> None:
    settings = load_settings(None, {})
    with pytest.raises(ValueError, match="frozen"):
        settings.realtime.enabled = False  # type: ignore[misc]


# --- the JSON file ------------------------------------------------------------------------


def test_file_values_are_read(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        {
            "CachingOptions": {"Redis": "localhost:6379"},
            "JwtOptions": {"Issuer": "issuer", "SigningKey": KEY, "AccessTokenMinutes": 5},
            "Cors": {"AllowedOrigins": ["https://app.example.com"], "AllowAll": True},
            "Realtime": {"Enabled": False, "KeepAliveIntervalSeconds": 5},
            "Environment": "Staging",
            "Logging": {"LogLevel": {"Default": "Information"}},
            "AllowedHosts": "*",
        },
    )
    settings = load_settings(path, {})
    assert settings.caching.redis == RedisEndpoint(host="localhost", port=6379)
    assert settings.jwt.issuer == "issuer"
    assert settings.jwt.signing_key == KEY
    assert settings.jwt.access_token_minutes == 5
    assert settings.cors.allowed_origins == ("https://app.example.com",)
    assert settings.cors.allow_all is True
    assert settings.realtime.enabled is False
    assert settings.realtime.keep_alive_interval_seconds == 5
    assert settings.environment is HostEnvironment.STAGING


def test_file_keys_are_case_insensitive(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"realtime": {"keepaliveintervalseconds": "7"}})
    assert load_settings(path, {}).realtime.keep_alive_interval_seconds == 7


def test_file_accepts_a_utf8_bom(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b'\xef\xbb\xbf{"Environment": "Staging"}')
    assert load_settings(path, {}).environment is HostEnvironment.STAGING


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    assert error_of(path) == f"{path}: configuration file not found"


def test_unreadable_file_names_the_file(tmp_path: Path) -> None:
    assert error_of(tmp_path).startswith(f"{tmp_path}: cannot read configuration file")


def test_invalid_json_names_the_file_and_position(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "Realtime": {,}\n}', encoding="utf-8")
    text = error_of(path)
    assert text.startswith(f"{path}: invalid JSON at line 2 column")


def test_file_must_hold_an_object(tmp_path: Path) -> None:
    path = write_config(tmp_path, ["Realtime"])
    assert error_of(path) == f"{path}: the configuration file must contain a JSON object"


def test_duplicate_keys_differing_in_case_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.json"
    path.write_text('{"Environment": "Staging", "environment": "Production"}', encoding="utf-8")
    assert "duplicate key" in error_of(path)


def test_a_section_where_a_value_belongs_is_an_error(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"CachingOptions": {"Redis": {"Host": "x"}}})
    assert error_of(path).startswith("CachingOptions:Redis: expected a single value")


def test_json_null_means_default(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"JwtOptions": {"Issuer": None}})
    assert load_settings(path, {}).jwt.issuer == "hero.local"


# --- the environment ----------------------------------------------------------------------


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        {"CachingOptions": {"Redis": "file-host:1"}, "JwtOptions": {"Issuer": "from-file"}},
    )
    settings = load_settings(path, {"CachingOptions__Redis": "env-host:2"})
    assert settings.caching.redis == RedisEndpoint(host="env-host", port=2)
    assert settings.jwt.issuer == "from-file"  # not overridden: the file value stays


def test_environment_names_are_case_insensitive() -> None:
    settings = load_settings(
        None,
        {
            "CACHINGOPTIONS__REDIS": "h:1",
            "jwtoptions__signingkey": KEY,
            "ReAlTiMe__EnableDetailedErrors": "TRUE",
            "environment": "production",
        },
    )
    assert settings.caching.redis_url() == "redis://h:1/0"
    assert settings.jwt.signing_key == KEY
    assert settings.realtime.enable_detailed_errors is True
    assert settings.environment is HostEnvironment.PRODUCTION
    assert settings.is_production


def test_colon_separated_environment_names_work_too() -> None:
    assert load_settings(None, {"Realtime:Map": "false"}).realtime.map is False


def test_conflicting_duplicates_in_the_environment_are_refused() -> None:
    text = error_of(None, Environment="Staging", ENVIRONMENT="Production")
    assert text.startswith("ENVIRONMENT: set more than once in the environment")


def test_unknown_keys_are_ignored(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"Serilog": {"MinimumLevel": "Debug"}, "Realtime": {"X": 1}})
    settings = load_settings(path, {"PATH": "/usr/bin", "HOME": "/root", "Foo__Bar": "1"})
    assert settings == Settings()


def test_empty_value_means_default() -> None:
    settings = load_settings(
        None, {"Realtime__KeepAliveIntervalSeconds": "", "JwtOptions__Issuer": "  "}
    )
    assert settings.realtime.keep_alive_interval_seconds == 15
    assert settings.jwt.issuer == "hero.local"


def test_empty_env_value_turns_off_redis_from_the_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"CachingOptions": {"Redis": "h:1"}})
    assert load_settings(path, {"CachingOptions__Redis": ""}).caching.redis is None


# --- lists --------------------------------------------------------------------------------


def test_list_items_from_indexed_environment_keys() -> None:
    settings = load_settings(
        None,
        {
            "Cors__AllowedOrigins__1": "https://b.example.com",
            "Cors__AllowedOrigins__0": "https://a.example.com",
            "Cors__AllowedOrigins__10": "https://c.example.com",
        },
    )
    assert settings.cors.allowed_origins == (
        "https://a.example.com",
        "https://b.example.com",
        "https://c.example.com",
    )


def test_indexed_environment_key_overrides_one_file_item(tmp_path: Path) -> None:
    path = write_config(
        tmp_path, {"Cors": {"AllowedOrigins": ["https://a.example.com", "https://b.example.com"]}}
    )
    settings = load_settings(path, {"CORS__ALLOWEDORIGINS__0": "https://z.example.com"})
    assert settings.cors.allowed_origins == ("https://z.example.com", "https://b.example.com")


def test_comma_separated_list_value() -> None:
    settings = load_settings(
        None, {"Cors__AllowedOrigins": "https://a.example.com, http://localhost:5173"}
    )
    assert settings.cors.allowed_origins == ("https://a.example.com", "http://localhost:5173")


def test_origins_are_normalised() -> None:
    settings = load_settings(None, {"Cors__AllowedOrigins__0": "HTTPS://App.Example.com/"})
    assert settings.cors.allowed_origins == ("https://app.example.com",)


def test_default_ports_are_dropped_from_origins() -> None:
    settings = load_settings(
        None,
        {
            "Cors__AllowedOrigins": "https://a.example.com:443, http://b.example.com:80,"
            " https://c.example.com:80, http://d.example.com:443, http://[::1]:80"
        },
    )
    assert settings.cors.allowed_origins == (
        "https://a.example.com",
        "http://b.example.com",
        "https://c.example.com:80",
        "http://d.example.com:443",
        "http://[::1]",
    )


def test_list_and_single_value_together_is_an_error() -> None:
    text = error_of(
        None, Cors__AllowedOrigins="https://a.example.com", Cors__AllowedOrigins__0="https://b.c"
    )
    assert text.startswith("Cors:AllowedOrigins: set both as a list")


def test_non_numeric_list_index_is_an_error() -> None:
    text = error_of(None, Cors__AllowedOrigins__first="https://a.example.com")
    assert text == "Cors:AllowedOrigins:first: list index must be a non-negative integer"


@pytest.mark.parametrize(
    "origin",
    ["*", "app.example.com", "https://app.example.com/path", "ftp://x.y", "https://u@x.y"],
)
def test_bad_origin_names_the_list_item(origin: str) -> None:
    text = error_of(
        None, Cors__AllowedOrigins__0="https://ok.example.com", Cors__AllowedOrigins__1=origin
    )
    assert text.startswith("Cors:AllowedOrigins:1: must be an origin like https://")


# --- bad values -> one line naming the key ------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        (
            "Realtime__KeepAliveIntervalSeconds",
            "abc",
            "Realtime:KeepAliveIntervalSeconds: value must be a positive number of seconds "
            "(got 'abc')",
        ),
        (
            "Realtime__HandshakeTimeoutSeconds",
            "0",
            "Realtime:HandshakeTimeoutSeconds: value must be a positive number of seconds "
            "(got '0')",
        ),
        (
            "Realtime__ClientTimeoutIntervalSeconds",
            "-5",
            "Realtime:ClientTimeoutIntervalSeconds: value must be a positive number of seconds "
            "(got '-5')",
        ),
        (
            "Realtime__MaximumReceiveMessageSize",
            "1.5",
            "Realtime:MaximumReceiveMessageSize: value must be a positive integer (got '1.5')",
        ),
        (
            "Http__MaxRequestBodySize",
            "1MB",
            "Http:MaxRequestBodySize: value must be a positive integer (got '1MB')",
        ),
        (
            "JwtOptions__AccessTokenMinutes",
            "0",
            "JwtOptions:AccessTokenMinutes: value must be a positive integer (got '0')",
        ),
        (
            "Realtime__Enabled",
            "yes",
            "Realtime:Enabled: value must be true or false (got 'yes')",
        ),
        (
            "Environment",
            "prod",
            "Environment: value must be one of Development, Staging, Production (got 'prod')",
        ),
        (
            "CachingOptions__Redis",
            "localhost:notaport",
            "CachingOptions:Redis: invalid Valkey endpoint: port must be an integer between 1 "
            "and 65535 (got 'notaport')",
        ),
    ],
)
def test_bad_values_give_one_line_naming_the_key(name: str, value: str, expected: str) -> None:
    assert error_of(None, **{name: value}) == expected


def test_bad_value_in_the_file_names_the_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"Realtime": {"KeepAliveIntervalSeconds": "abc"}})
    assert error_of(path).startswith("Realtime:KeepAliveIntervalSeconds: value must be")


def test_fractional_seconds_are_allowed() -> None:
    settings = load_settings(
        None,
        {
            "Realtime__KeepAliveIntervalSeconds": "0.5",
            "Realtime__ClientTimeoutIntervalSeconds": "1.5",
        },
    )
    assert settings.realtime.keep_alive_interval_seconds == 0.5
    assert settings.realtime.client_timeout_interval_seconds == 1.5


def test_client_timeout_must_exceed_keep_alive() -> None:
    text = error_of(
        None, Realtime__KeepAliveIntervalSeconds="30", Realtime__ClientTimeoutIntervalSeconds="30"
    )
    assert text == (
        "Realtime:ClientTimeoutIntervalSeconds: must be greater than "
        "Realtime:KeepAliveIntervalSeconds (got 30 <= 30)"
    )


def test_database_url_must_have_a_scheme_and_is_never_echoed() -> None:
    text = error_of(None, DatabaseOptions__ConnectionString="user:secret@host/db")
    assert text.startswith("DatabaseOptions:ConnectionString: must be a SQLAlchemy URL")
    assert "secret" not in text


# --- the signing key and Production -------------------------------------------------------


def test_short_signing_key_is_refused_without_echoing_it() -> None:
    text = error_of(None, JwtOptions__SigningKey="short-secret")
    assert text == "JwtOptions:SigningKey: must be at least 32 characters (got 12)"


def test_empty_signing_key_is_refused_in_production() -> None:
    text = error_of(None, Environment="Production")
    assert text.startswith("JwtOptions:SigningKey: is required when Environment is Production")


def test_empty_signing_key_outside_production_leaves_the_choice_to_the_caller() -> None:
    settings = load_settings(None, {"Environment": "Staging"})
    assert not settings.jwt.has_signing_key
    generated = generate_signing_key()
    assert len(generated) >= 32
    assert generate_signing_key() != generated
    with_key = settings.with_signing_key(generated)
    assert with_key.jwt.signing_key == generated
    assert with_key.jwt.has_signing_key
    assert not settings.jwt.has_signing_key  # the original is unchanged
    with pytest.raises(SettingsError, match="JwtOptions:SigningKey"):
        settings.with_signing_key("short")


def test_allow_all_cors_is_refused_in_production() -> None:
    text = error_of(
        None, Environment="Production", JwtOptions__SigningKey=KEY, Cors__AllowAll="true"
    )
    assert text.startswith("Cors:AllowAll: must not be true when Environment is Production")


def test_secrets_are_not_in_repr() -> None:
    settings = load_settings(
        None,
        {
            "JwtOptions__SigningKey": "s3cr3t-" * 6,
            "CachingOptions__Redis": "h:1,password=pa55word",
            "DatabaseOptions__ConnectionString": "postgresql+asyncpg://u:dbpa55@h/db",
        },
    )
    text = repr(settings)
    assert "s3cr3t" not in text
    assert "pa55word" not in text
    assert "dbpa55" not in text


# --- CachingOptions:Redis ----------------------------------------------------------------

_CLUSTER_URL = "redis://n1:7000/0?cluster=true"


@pytest.mark.parametrize(
    ("value", "endpoint", "url"),
    [
        ("localhost:6379", RedisEndpoint("localhost", 6379), "redis://localhost:6379/0"),
        ("localhost", RedisEndpoint("localhost", 6379), "redis://localhost:6379/0"),
        (
            "cache.internal:6380,password=p@ss:w,ssl=True,abortConnect=false",
            RedisEndpoint("cache.internal", 6380, password="p@ss:w", ssl=True),
            "rediss://:p%40ss%3Aw@cache.internal:6380/0",
        ),
        (
            "h,ssl=true",
            RedisEndpoint("h", 6380, ssl=True),
            "rediss://h:6380/0",
        ),
        (
            "h:1,user=app,password=pw,defaultDatabase=3,connectTimeout=5000,allowAdmin=true",
            RedisEndpoint("h", 1, username="app", password="pw", database=3),
            "redis://app:pw@h:1/3",
        ),
        ("[::1]:7000", RedisEndpoint("::1", 7000), "redis://[::1]:7000/0"),
        ("redis://h:1", RedisEndpoint("h", 1), "redis://h:1/0"),
        ("redis://h", RedisEndpoint("h", 6379), "redis://h:6379/0"),
        (
            "rediss://user:p%40ss@h:2/4",
            RedisEndpoint("h", 2, username="user", password="p@ss", ssl=True, database=4),
            "rediss://user:p%40ss@h:2/4",
        ),
        ("valkey://:pw@h:3", RedisEndpoint("h", 3, password="pw"), "redis://:pw@h:3/0"),
        ("VALKEYS://h:4/1", RedisEndpoint("h", 4, ssl=True, database=1), "rediss://h:4/1"),
        (
            "rediss://h:5?ssl_cert_reqs=none&db=2",
            RedisEndpoint("h", 5, ssl=True, database=2, options=(("ssl_cert_reqs", "none"),)),
            "rediss://h:5/2?ssl_cert_reqs=none",
        ),
        ("redis://[::1]:6", RedisEndpoint("::1", 6), "redis://[::1]:6/0"),
        # A Valkey Cluster: several endpoints, or cluster=true.
        (
            "n1:7000,n2:7001,[::1]:7002,password=pw",
            RedisEndpoint(
                "n1", 7000, password="pw", cluster=True, seeds=(("n2", 7001), ("::1", 7002))
            ),
            "redis://:pw@n1:7000/0?cluster=true&seed=n2%3A7001&seed=%5B%3A%3A1%5D%3A7002",
        ),
        ("n1:7000,cluster=true", RedisEndpoint("n1", 7000, cluster=True), _CLUSTER_URL),
        ("redis://n1:7000?cluster=true", RedisEndpoint("n1", 7000, cluster=True), _CLUSTER_URL),
    ],
)
def test_redis_endpoint_forms(value: str, endpoint: RedisEndpoint, url: str) -> None:
    assert parse_redis_endpoint(value) == endpoint
    settings = load_settings(None, {"CachingOptions__Redis": value})
    assert settings.caching.redis == endpoint
    assert settings.caching.redis_url() == url


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("h:0", "port must be an integer between 1 and 65535"),
        ("h:1,h2:2,defaultDatabase=1", "a Valkey Cluster has only database 0"),
        ("redis://h:1/2?cluster=true", "a Valkey Cluster has only database 0"),
        ("h:1,cluster=yes", "cluster must be true or false"),
        ("password=x", "no host:port endpoint given"),
        ("h:1,ssl=maybe", "ssl must be true or false"),
        ("h:1,defaultDatabase=x", "defaultDatabase must be a number"),
        ("mymaster,serviceName=mymaster", "Sentinel"),
        ("http://h:1", "unsupported URL scheme"),
        ("redis://:1", "the URL has no host"),
        ("redis://h:1/x", "the database in the URL path must be a number"),
        ("redis://h:1?bogus=1", "unsupported URL option 'bogus'"),
    ],
)
def test_bad_redis_endpoints(value: str, problem: str) -> None:
    text = error_of(None, CachingOptions__Redis=value)
    assert text.startswith("CachingOptions:Redis: invalid Valkey endpoint: ")
    assert problem in text


def test_redis_errors_never_echo_the_password() -> None:
    text = error_of(None, CachingOptions__Redis="h:bad,password=hunter2")
    assert "hunter2" not in text
    text = error_of(None, CachingOptions__Redis="redis://u:hunter2@h:bad")
    assert "hunter2" not in text


def test_settings_can_be_built_in_python_by_field_name() -> None:
    settings = Settings.model_validate(
        {"realtime": {"keep_alive_interval_seconds": 1, "client_timeout_interval_seconds": 2}}
    )
    assert settings.realtime.keep_alive_interval_seconds == 1
    alias_built = Settings.model_validate({"Realtime": {"KeepAliveIntervalSeconds": "1"}})
    assert alias_built.realtime.keep_alive_interval_seconds == 1
