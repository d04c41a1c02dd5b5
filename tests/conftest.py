"""Suite-wide fixtures."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from tests.support.servers import UNIT, RunningServer, run_hero

REQUIRE_ALL_TOOLS = os.environ.get("HERO_REQUIRE_ALL_TOOLS") == "1"


def pytest_configure(config: pytest.Config) -> None:
    """Servers started by tests (and their subprocesses) use a throwaway SQLite file, never
    `hero.db` in the working tree, unless a test sets its own connection string."""
    if "DatabaseOptions__ConnectionString" not in os.environ:
        folder = tempfile.mkdtemp(prefix="hero-test-db-")
        url = f"sqlite+aiosqlite:///{os.path.join(folder, 'hero.db')}"
        os.environ["DatabaseOptions__ConnectionString"] = url  # noqa: SIM112 (the contract's key)


def missing_tool(reason: str) -> None:
    """Skip locally, but fail in CI (HERO_REQUIRE_ALL_TOOLS=1): CI never skips."""
    if REQUIRE_ALL_TOOLS:
        pytest.fail(f"required tool missing: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def unit() -> float:
    return UNIT


@pytest.fixture(scope="session")
def conformance_server() -> Iterator[RunningServer]:
    """One `hero conformance-server` for the session; hub URL is base_url + '/conformance'."""
    with run_hero(["conformance-server"]) as server:
        yield server


@pytest.fixture(scope="session")
def node() -> str:
    path = shutil.which("node")
    if path is None:
        missing_tool("node is not installed")
    assert path is not None
    return path
