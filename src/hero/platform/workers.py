"""The app factory each `hero serve --workers N` process imports.

The parent process checked the settings, generated a development signing key if needed
and exported it, and bound the socket; each worker reads the same settings here.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette

from hero.platform import collector
from hero.platform.app import create_app
from hero.platform.logs import apply_log_levels, configure_logging
from hero.platform.settings import load_settings

CONFIG_FILE_VARIABLE = "HERO_CONFIG_FILE"
"""Where the parent tells workers which `--config` file it was given."""


def create_worker_app() -> Starlette:
    configure_logging()
    settings = load_settings(os.environ.get(CONFIG_FILE_VARIABLE) or None, os.environ)
    apply_log_levels(settings.logging.levels())
    app = create_app(settings)
    collector.settle()  # before the lifespan: what the modules and the app hold is frozen
    return app
