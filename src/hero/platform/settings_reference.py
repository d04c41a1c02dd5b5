"""The configuration reference table, generated from the settings model.

`docs/configuration.md` holds the table between the markers below; a test checks that it is
what `reference_table()` produces. After changing a setting, regenerate it with
`python -m hero.platform.settings_reference docs/configuration.md`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from hero.platform.settings import Settings

BEGIN = "<!-- settings reference: generated from hero.platform.settings; do not edit -->"
END = "<!-- end of settings reference -->"


def _default(field: FieldInfo) -> str:
    value: Any = field.get_default(call_default_factory=True)
    if isinstance(value, Enum):
        value = value.value
    if value is None or value == "":
        return "empty"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (tuple, list)):
        return "`[]`" if not value else f"`{list(value)}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def _rows(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, str, str]]:
    for field in model.model_fields.values():
        key = f"{prefix}{field.alias}"
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _rows(annotation, f"{key}:")
            continue
        yield key, _default(field), field.description or ""


def reference_table() -> str:
    """The markdown table of every setting: key, default, meaning."""
    lines = ["| key | default | meaning |", "|---|---|---|"]
    lines += [
        f"| `{key}` | {default} | {meaning} |" for key, default, meaning in _rows(Settings, "")
    ]
    return "\n".join(lines)


def render_into(text: str) -> str:
    """`text` with the table between the markers replaced by the current one."""
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    if not rest:
        raise ValueError("the markers of the settings reference are missing")
    return f"{head}{BEGIN}\n{reference_table()}\n{END}{tail}"


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else Path("docs/configuration.md")
    path.write_text(render_into(path.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
