"""Short reads of a SQLite file, done on the spot.

Through the async engine a read costs about a dozen hand-overs between the event loop and
aiosqlite's thread (check out, execute, fetch, roll back, check in, each awaited through a
greenlet). A hub lookup (`Database.lookup`: the channels of a connecting user) is a
point query on an index that SQLite answers in microseconds, mostly from the page cache;
the hand-overs cost far more than the query. A worker thread of its own, with one
hand-over each way, was no better under load: the two threads then fight for the GIL.
`bench/connections.py` measured the channel lookup at 0.17 ms of server CPU per new
connection through a thread, 0.06 ms on the spot.

So `SqliteReads` keeps one synchronous connection (the standard `sqlite3` driver, through
SQLAlchemy, so statements compile and types convert as on the async engine) and runs the
query in the event loop's own thread. It never waits for a lock there: its busy timeout
is zero and the connection is read-only (`query_only`). In WAL mode a reader does not wait
for writers; if SQLite still answers "busy" (a checkpoint that must reset the log, recovery
after a crash), `Busy` is raised and the caller reads through the async engine instead.

Only for a database file: an in-memory database exists once per connection, so a second
connection would not see it (`SqliteReads.possible`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Executable, create_engine, event
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import StaticPool


class Busy(Exception):
    """SQLite could not start the read without waiting for a lock."""


class SqliteReads:
    """One read-only synchronous connection to a SQLite file, used from the loop's thread."""

    def __init__(self, url: URL) -> None:
        self._engine = create_engine(
            url.set(drivername="sqlite"),
            poolclass=StaticPool,
            connect_args={"timeout": 0, "check_same_thread": False},
        )
        event.listen(self._engine, "connect", _read_only)

    @staticmethod
    def possible(url: URL) -> bool:
        database = url.database or ""
        return bool(database) and database != ":memory:" and url.query.get("mode") != "memory"

    def rows(self, statement: Executable, parameters: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        """The rows of `statement`; `Busy` when SQLite would have to wait for a lock."""
        try:
            with self._engine.connect() as connection:
                return connection.execute(statement, parameters).all()
        except OperationalError as exc:
            if isinstance(exc.orig, sqlite3.OperationalError) and _is_busy(exc.orig):
                raise Busy(str(exc.orig)) from None
            raise

    def close(self) -> None:
        self._engine.dispose()


def _read_only(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
    text = str(exc)
    return "locked" in text or "busy" in text
