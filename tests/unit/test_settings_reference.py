"""docs/configuration.md's table is the one generated from the settings model."""

from __future__ import annotations

from hero.platform.settings import Settings
from hero.platform.settings_reference import reference_table, render_into
from tests.support.servers import REPO


def test_the_configuration_page_shows_the_current_settings() -> None:
    page = (REPO / "docs" / "configuration.md").read_text()
    assert render_into(page) == page, (
        "docs/configuration.md is stale: python -m hero.platform.settings_reference "
        "docs/configuration.md"
    )


def test_every_setting_has_a_meaning() -> None:
    table = reference_table()
    rows = [line for line in table.splitlines()[2:]]
    assert all(not row.endswith("|  |") for row in rows), table
    sections = [name for name, f in Settings.model_fields.items() if f.alias]
    assert len(rows) > len(sections)
