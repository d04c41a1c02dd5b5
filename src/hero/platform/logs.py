"""Logging set-up for every hero process (the CLI and each worker)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from hero.auth import RedactTokensFilter
from hero.platform.http_server import WEBSOCKET_PROTOCOL_LOGGER

ACCESS_LOGGER = "uvicorn.access"
_WEBSOCKET_LINE = '%s - "WebSocket %s" '
"""How uvicorn's WebSocket protocols (and hero's handshake, http_server.py) begin the line
they log for each opening handshake: `[accepted]`, or the status of a refusal."""


class WebSocketAccessLines(logging.Filter):
    """On `uvicorn.error`: moves uvicorn's one line per WebSocket handshake to
    `uvicorn.access`, beside the HTTP requests' lines, so that one level
    (`Logging:LogLevel:uvicorn.access`) governs every per-request line; uvicorn itself
    logs them with its start-up and shutdown lines."""

    def __init__(self) -> None:
        super().__init__()
        self._access = logging.getLogger(ACCESS_LOGGER)

    def filter(self, record: logging.LogRecord) -> bool:
        if not (isinstance(record.msg, str) and record.msg.startswith(_WEBSOCKET_LINE)):
            return True
        access = self._access
        if access.isEnabledFor(record.levelno):
            record.name = ACCESS_LOGGER
            access.handle(record)
        return False


def configure_logging() -> None:
    """INFO to stderr, with `access_token` values redacted from uvicorn's lines and its
    WebSocket handshake lines logged as access lines; Alembic's per-run chatter is kept to
    warnings (start-up problems stay one line)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # The handshake lines leave uvicorn.error first, so they are redacted once, as access lines.
    logging.getLogger("uvicorn.error").addFilter(WebSocketAccessLines())
    redact = RedactTokensFilter()
    for name in (ACCESS_LOGGER, "uvicorn.error", "uvicorn"):
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
