"""Pytest fixtures for a real PostgreSQL server (helpers in postgres_server.py). Load with
``pytest_plugins = ("tests.support.postgres",)``:

- ``postgres_server`` (session): the running server.
- ``postgres_url`` (function): a fresh, empty database on it as a SQLAlchemy asyncpg URL.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.postgres_server import asyncpg_url, create_database, private_postgres

__all__ = ["asyncpg_url", "postgres_server", "postgres_url"]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    with private_postgres() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: Any) -> str:
    return create_database(postgres_server)
