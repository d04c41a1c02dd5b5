"""Telling "the database cannot be reached right now" from every other database error.

A request that fails because PostgreSQL is down, restarting or cut off is the client's cue to
retry later (503), not a bug (500). What counts:

- the driver could not connect at all: an `OSError` (socket missing, connection refused,
  timed out) raised from inside SQLAlchemy or the driver, which SQLAlchemy passes on as is;
- a driver error SQLAlchemy recognised as a lost connection (`connection_invalidated`), or
  whose SQLSTATE is a connection exception (class 08) or a shutdown / start-up refusal
  (57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now);
- the pool's own timeout waiting for a free connection.

Constraint violations, syntax errors and the like stay what they are.
"""

from __future__ import annotations

import traceback

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

_UNREACHABLE_STATES = ("08", "57P01", "57P02", "57P03")
_DRIVER_PACKAGES = frozenset({"sqlalchemy", "asyncpg", "aiosqlite"})


def database_unreachable(exc: BaseException) -> bool:
    """True when `exc` means the database could not be reached (see the module docstring)."""
    if isinstance(exc, PoolTimeoutError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated or isinstance(exc.orig, OSError):
            return True
        state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        return isinstance(state, str) and state.startswith(_UNREACHABLE_STATES)
    if isinstance(exc, OSError):
        return _raised_by_driver(exc)
    return False


def _raised_by_driver(exc: BaseException) -> bool:
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        module = str(frame.f_globals.get("__name__", ""))
        if module.partition(".")[0] in _DRIVER_PACKAGES:
            return True
    return False
