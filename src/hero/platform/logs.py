"""Logging set-up for every hero process (the CLI and each worker)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from hero.auth import RedactTokensFilter
from hero.platform.http_server import WEBSOCKET_PROTOCOL_LOGGER


def configure_logging() -> None:
    """INFO to stderr, with `access_token` values redacted from uvicorn's lines; Alembic's
    per-run chatter is kept to warnings (start-up problems stay one line)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    redact = RedactTokensFilter()
    for name in ("uvicorn.access", "uvicorn.error", "uvicorn"):
        logging.getLogger(name).addFilter(redact)
    # `websockets`' per-socket INFO lines repeat uvicorn's "[accepted]" (http_server.py).
    logging.getLogger(WEBSOCKET_PROTOCOL_LOGGER).setLevel(logging.WARNING)
    # Alembic narrates every migration step at INFO; hero logs the resulting revision itself.
    logging.getLogger("alembic").setLevel(logging.WARNING)


def apply_log_levels(levels: Mapping[str, int]) -> None:
    """`Logging:LogLevel` (`LoggingOptions.levels`): each named logger's level, `""` the
    root's; applied after `configure_logging`, so it can also lower hero's own defaults."""
    for name, level in levels.items():
        logging.getLogger(name or None).setLevel(level)
