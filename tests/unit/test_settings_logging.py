"""`Logging:LogLevel`: a level per logger, as ASP.NET Core's (hero.platform.settings)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from hero.platform.logs import apply_log_levels
from hero.platform.settings import SettingsError, load_settings


def test_levels_come_from_the_file_and_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "appsettings.json"
    document = {"Logging": {"LogLevel": {"Default": "Information", "uvicorn.access": "None"}}}
    config.write_text(json.dumps(document))
    settings = load_settings(config, {"Logging__LogLevel__uvicorn.access": "Warning"})
    assert settings.logging.levels() == {"": logging.INFO, "uvicorn.access": logging.WARNING}


def test_no_levels_by_default() -> None:
    assert load_settings(None, {}).logging.levels() == {}


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"Logging__LogLevel__hero": "loud"}, "Logging:LogLevel:hero: unknown level 'loud'"),
        ({"Logging__LogLevel": "Warning"}, "Logging:LogLevel: expected a section"),
        ({"Logging__LogLevel__a__b": "Warning"}, "Logging:LogLevel:a:b: values must be single"),
    ],
)
def test_a_bad_level_is_a_one_line_error(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(None, environ)
    assert str(caught.value).startswith(message), str(caught.value)
    assert "\n" not in str(caught.value)


def test_levels_are_applied_to_the_named_loggers() -> None:
    name = "hero.test.settings-logging"
    logger = logging.getLogger(name)
    before = logger.level
    try:
        levels = load_settings(None, {f"Logging__LogLevel__{name}": "Error"}).logging.levels()
        apply_log_levels(levels)
        assert logger.level == logging.ERROR
        assert not logger.isEnabledFor(logging.WARNING)
    finally:
        logger.setLevel(before)
