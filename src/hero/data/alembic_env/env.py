"""Alembic's environment for hero: runs on the connection `Database.migrate()` hands it.

Each module keeps its own migration history (a branch with its own label, in the module's
`migrations/` folder); `Database.migrate()` lists those folders as version locations and
upgrades every head.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.types import TypeDecorator

from hero.data.database import compared_with_models

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("hero runs its migrations through hero.data.Database.migrate()")


def _render_item(kind: str, item: Any, autogen: AutogenContext) -> str | Literal[False]:
    """Revisions name a TypeDecorator's plain SQL type, so they import nothing of hero."""
    if kind == "type" and isinstance(item, TypeDecorator):
        impl = item.impl_instance
        return f"sa.{impl!r}"
    return False


context.configure(
    connection=connection,
    target_metadata=config.attributes.get("target_metadata"),
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    render_item=_render_item,
    include_name=compared_with_models,
)
with context.begin_transaction():
    context.run_migrations()
