"""`hero serve` as an operator meets it: no configuration at all, and bad configuration.

Every process runs from a fresh temporary working directory with every platform setting
removed from the environment.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from hero.auth import JwtValidator
from tests.integration.platform_app import REPO, clean_environ, hero_serve
from tests.support.servers import RunningServer

EXIT_CONFIG = 2
BANNER = re.compile(r"^hero serving on http://127\.0\.0\.1:(\d+) \(hub at /realtime/hub\)$")


def run_hero_cli(
    args: Sequence[str], cwd: Path, unit: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = clean_environ(env)
    full_env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "hero", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=30 * unit,
        check=False,
    )


def stderr_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def bare_cwd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bare")


@pytest.fixture(scope="module")
def bare(bare_cwd: Path) -> Iterator[RunningServer]:
    """`hero serve` with no configuration, from an empty working directory."""
    with hero_serve(clean_environ(), cwd=bare_cwd) as server:
        yield server


def test_bare_serve_creates_the_sqlite_database_in_the_working_directory(
    bare: RunningServer, bare_cwd: Path, unit: float
) -> None:
    with httpx.Client(base_url=bare.base_url, timeout=10 * unit) as http:
        ready = http.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok"
    assert (bare_cwd / "hero.db").is_file()


def test_unusable_database_url_is_one_line_and_exit_2(tmp_path: Path, unit: float) -> None:
    result = run_hero_cli(
        ["serve", "--port", "0"],
        tmp_path,
        unit,
        {"DatabaseOptions__ConnectionString": "nosuchdriver://x/y"},
    )
    assert result.returncode == 2
    lines = stderr_lines(result)
    assert len(lines) == 1, lines
    assert lines[0].startswith("hero: configuration error: DatabaseOptions:ConnectionString")


def test_database_url_with_a_bad_port_is_one_line_without_the_password(
    tmp_path: Path, unit: float
) -> None:
    result = run_hero_cli(
        ["serve", "--port", "0"],
        tmp_path,
        unit,
        {"DatabaseOptions__ConnectionString": "postgresql+asyncpg://u:s3cr3t-pw@h:notaport/db"},
    )
    assert result.returncode == EXIT_CONFIG
    lines = stderr_lines(result)
    assert len(lines) == 1, lines
    assert lines[0].startswith("hero: configuration error: DatabaseOptions:ConnectionString")
    assert "s3cr3t-pw" not in result.stderr + result.stdout


TOKEN_KEY = "cli-test-signing-key-0123456789abcdef"


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--user-id", "not-a-uuid"], "--user-id must be a UUID"),
        (["--user-id", "00000000-0000-0000-0000-000000000000"], "--user-id must not be the nil"),
        (["--user-id", "9f1c5e8e-3b1a-4c2e-9a57-6d1f2b3c4d5e", "--ttl", "-1"], "--ttl must be"),
        (["--user-id", "9f1c5e8e-3b1a-4c2e-9a57-6d1f2b3c4d5e", "--ttl", "0"], "--ttl must be"),
        (["--user-id", "9f1c5e8e-3b1a-4c2e-9a57-6d1f2b3c4d5e", "--ttl", "inf"], "--ttl must be"),
    ],
)
def test_token_arguments_are_checked_in_one_line(
    tmp_path: Path, unit: float, args: list[str], problem: str
) -> None:
    result = run_hero_cli(["token", *args], tmp_path, unit, {"JwtOptions__SigningKey": TOKEN_KEY})
    assert result.returncode == EXIT_CONFIG
    assert result.stdout == ""
    lines = stderr_lines(result)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"hero: {problem}")


def test_token_for_a_valid_user_id_and_ttl(tmp_path: Path, unit: float) -> None:
    user = "9F1C5E8E-3B1A-4C2E-9A57-6D1F2B3C4D5E"
    result = run_hero_cli(
        ["token", "--user-id", user, "--ttl", "60"],
        tmp_path,
        unit,
        {"JwtOptions__SigningKey": TOKEN_KEY},
    )
    assert result.returncode == 0, result.stderr
    principal = JwtValidator("hero.local", "hero.clients", TOKEN_KEY).validate(
        result.stdout.strip()
    )
    assert str(principal.user_id) == user.lower()
    assert principal.expires_at is not None
    assert 0 < principal.expires_at - time.time() <= 61


def test_bare_serve_prints_where_it_listens_and_warns_about_the_dev_key(
    bare: RunningServer,
) -> None:
    lines = [line.rstrip("\n") for line in bare.output]
    banners = [m for m in map(BANNER.match, lines) if m]
    assert len(banners) == 1, lines
    assert int(banners[0].group(1)) == bare.port
    warnings = [line for line in lines if "WARNING" in line and "JwtOptions:SigningKey" in line]
    assert len(warnings) == 1, lines


def test_bare_serve_serves_health_demo_page_and_the_hub(bare: RunningServer, unit: float) -> None:
    with httpx.Client(base_url=bare.base_url, timeout=10 * unit) as http:
        live = http.get("/health/live")
        assert live.status_code == 200
        home = http.get("/")
        assert home.status_code == 200
        assert home.headers["content-type"].startswith("text/html")
        # the hub is mapped and requires a token (the random dev key cannot be minted for)
        for path in ("/realtime/hub", "/api/v1/realtime/hub"):
            response = http.post(f"{path}/negotiate", params={"negotiateVersion": "1"})
            assert response.status_code == 401, path


def test_bad_environment_value_names_the_key(tmp_path: Path, unit: float) -> None:
    result = run_hero_cli(
        ["serve", "--port", "0"], tmp_path, unit, {"Realtime__KeepAliveIntervalSeconds": "abc"}
    )
    assert result.returncode == EXIT_CONFIG
    lines = stderr_lines(result)
    assert len(lines) == 1, result.stderr
    assert "Realtime:KeepAliveIntervalSeconds" in lines[0]
    assert "serving on" not in result.stdout


def test_invalid_json_config_file_names_the_file(tmp_path: Path, unit: float) -> None:
    config = tmp_path / "appsettings.json"
    config.write_text('{"Realtime": {"KeepAliveIntervalSeconds": 5,}}', encoding="utf-8")
    result = run_hero_cli(["serve", "--port", "0", "--config", str(config)], tmp_path, unit)
    assert result.returncode == EXIT_CONFIG
    lines = stderr_lines(result)
    assert len(lines) == 1, result.stderr
    assert str(config) in lines[0]
    assert "serving on" not in result.stdout


def test_bad_value_in_config_file_names_the_key(tmp_path: Path, unit: float) -> None:
    config = tmp_path / "appsettings.json"
    config.write_text('{"Cors": {"AllowedOrigins": ["not an origin"]}}', encoding="utf-8")
    result = run_hero_cli(["serve", "--port", "0", "--config", str(config)], tmp_path, unit)
    assert result.returncode == EXIT_CONFIG
    lines = stderr_lines(result)
    assert len(lines) == 1, result.stderr
    assert "Cors:AllowedOrigins" in lines[0]


def test_short_signing_key_is_refused_without_showing_it(tmp_path: Path, unit: float) -> None:
    secret = "too-short-secret-xyz"
    result = run_hero_cli(
        ["serve", "--port", "0"], tmp_path, unit, {"JwtOptions__SigningKey": secret}
    )
    assert result.returncode == EXIT_CONFIG
    lines = stderr_lines(result)
    assert len(lines) == 1, result.stderr
    assert "JwtOptions:SigningKey" in lines[0]
    assert secret not in result.stderr + result.stdout


def test_workers_without_valkey_is_a_clear_error(tmp_path: Path, unit: float) -> None:
    key = {"JwtOptions__SigningKey": "a-signing-key-of-at-least-32-characters"}
    result = run_hero_cli(["serve", "--port", "0", "--workers", "2"], tmp_path, unit, key)
    assert result.returncode == EXIT_CONFIG
    lines = stderr_lines(result)
    assert len(lines) == 1, result.stderr
    assert "CachingOptions:Redis" in lines[0]
    assert "serving on" not in result.stdout


def test_workers_without_valkey_is_one_line_even_without_configuration(
    tmp_path: Path, unit: float
) -> None:
    result = run_hero_cli(["serve", "--port", "0", "--workers", "2"], tmp_path, unit)
    assert result.returncode == EXIT_CONFIG
    lines = stderr_lines(result)
    assert len(lines) == 1, result.stderr
    assert "CachingOptions:Redis" in lines[0]


@pytest.mark.parametrize("command", ["serve", "conformance-server"])
def test_unreachable_valkey_is_one_line_and_exit_1(
    tmp_path: Path, unit: float, command: str
) -> None:
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    result = run_hero_cli(
        [command, "--port", "0"],
        tmp_path,
        unit,
        {
            "CachingOptions__Redis": f"127.0.0.1:{port}",
            "JwtOptions__SigningKey": "x" * 40,
        },
    )
    assert result.returncode == 1
    lines = stderr_lines(result)
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        f"hero: cannot start: CachingOptions:Redis: cannot reach 127.0.0.1:{port}"
    )


def test_hero_migrate_creates_hero_db_in_the_working_directory(tmp_path: Path, unit: float) -> None:
    result = run_hero_cli(["migrate"], tmp_path, unit)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("hero: database at ")
    assert (tmp_path / "hero.db").is_file()
    again = run_hero_cli(["migrate"], tmp_path, unit)
    assert again.returncode == 0
    assert again.stdout == result.stdout


def test_scripts_serve_keeps_hero_db_in_the_callers_directory() -> None:
    text = (REPO / "scripts" / "serve").read_text()
    assert "\ncd " not in text  # the database path is relative to where the user runs it
