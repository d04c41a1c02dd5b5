"""Logging set-up for every hero process (the CLI and each worker)."""

from __future__ import annotations

import logging

from hero.auth import RedactTokensFilter


def configure_logging() -> None:
    """INFO to stderr, with `access_token` values redacted from uvicorn's lines; Alembic's
    per-run chatter is kept to warnings (start-up problems stay one line)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    redact = RedactTokensFilter()
    for name in ("uvicorn.access", "uvicorn.error", "uvicorn"):
        logging.getLogger(name).addFilter(redact)
    # Alembic narrates every migration step at INFO; hero logs the resulting revision itself.
    logging.getLogger("alembic").setLevel(logging.WARNING)
