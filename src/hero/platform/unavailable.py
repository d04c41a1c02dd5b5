"""503 for a REST request the database cannot serve right now.

While PostgreSQL is down or restarting, a route's query fails with the driver's connection
error. That is not a bug in the request, so it answers `503 Service Unavailable`
(`application/problem+json`, with `Retry-After`) and logs one WARNING line, instead of a 500
and an ERROR traceback. Any other database error is left alone (a 500, as before).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request
from starlette.responses import Response

from hero.data import database_unreachable
from hero.platform.web import problem

logger = logging.getLogger("hero.platform")

RETRY_AFTER_SECONDS = 5
"""What `Retry-After` tells a client refused while the database is unavailable."""


def database_unavailable_response() -> Response:
    return problem(
        503,
        "Service Unavailable",
        "The database is unavailable; try again shortly.",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def install_database_unavailable_handler(app: FastAPI) -> None:
    """Map the database driver's connection errors escaping a route to a 503."""

    async def on_database_error(request: Request, exc: Exception) -> Response:
        if not database_unreachable(exc):
            raise exc  # a real fault: the server's 500 and its traceback, as without this
        logger.warning(
            "%s %s answered 503: the database is unavailable (%s)",
            request.method,
            request.url.path,
            type(exc).__name__,
        )
        return database_unavailable_response()

    app.add_exception_handler(SQLAlchemyError, on_database_error)
    app.add_exception_handler(OSError, on_database_error)
