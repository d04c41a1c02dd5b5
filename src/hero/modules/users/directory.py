"""UserDirectory: who has been seen, per tenant, under which display name."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import Index, String, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import Uuid

from hero.auth import Principal
from hero.data import Database, UnitOfWork, UtcDateTime, utc_now


class UsersModel(DeclarativeBase):
    """The directory's own declarative base."""


class KnownUser(UsersModel):
    """One user of one tenant, with the display name of the last token seen."""

    __tablename__ = "directory_users"

    tenant_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200), default=None)
    name_key: Mapped[str | None] = mapped_column(String(200), default=None)
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime())

    __table_args__ = (Index("ix_directory_users_name", "tenant_id", "name_key"),)


class UserDirectory:
    """Kept current as tokens arrive (`seen`); resolves `@name` mentions (`resolve_names`).

    A write happens only when a (tenant, user) is new to this process or its name changed,
    so a busy client costs one dictionary look-up per request.
    """

    def __init__(self, database: Database, *, cache_size: int = 100_000) -> None:
        self._database = database
        self._written: dict[tuple[str, uuid.UUID], str | None] = {}
        self._cache_size = cache_size

    async def seen(self, principal: Principal) -> None:
        key = (principal.tenant_id, principal.user_id)
        if key in self._written and self._written[key] == principal.name:
            return
        name = principal.name.strip() if principal.name else None
        async with self._database.transaction() as session:
            row = await session.get(KnownUser, key)
            if row is None:
                session.add(
                    KnownUser(
                        tenant_id=principal.tenant_id,
                        user_id=principal.user_id,
                        name=name,
                        name_key=name.lower() if name else None,
                        seen_at=utc_now(),
                    )
                )
            else:
                row.name = name
                row.name_key = name.lower() if name else None
                row.seen_at = utc_now()
        if len(self._written) >= self._cache_size:
            self._written.clear()
        self._written[key] = principal.name

    async def resolve_names(
        self, work: UnitOfWork, tenant_id: str, names: Collection[str]
    ) -> dict[str, uuid.UUID]:
        keys = {n.lower() for n in names if n}
        if not keys:
            return {}
        rows = await work.session.execute(
            select(KnownUser.name_key, KnownUser.user_id).where(
                KnownUser.tenant_id == tenant_id, func.lower(KnownUser.name_key).in_(keys)
            )
        )
        return {str(key): user for key, user in rows.all() if key is not None}
