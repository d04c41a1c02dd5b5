"""UserDirectory: who has been seen, per tenant, under which display name."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import Index, String, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import Uuid

from hero.auth import Principal
from hero.data import Database, UnitOfWork, UtcDateTime, utc_now

logger = logging.getLogger("hero.users")


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
    so a busy client costs one dictionary look-up per request; requests of one user that
    arrive while its write is under way wait for that write instead of writing too (a user
    opening many connections at once, or every user again on each `--workers` process).
    """

    def __init__(self, database: Database, *, cache_size: int = 100_000) -> None:
        self._database = database
        self._written: dict[tuple[str, uuid.UUID], str | None] = {}
        self._writing: dict[tuple[str, uuid.UUID], asyncio.Future[None]] = {}
        self._cache_size = cache_size

    def _known(self, key: tuple[str, uuid.UUID], name: str | None) -> bool:
        return key in self._written and self._written[key] == name

    async def seen(self, principal: Principal) -> None:
        key = (principal.tenant_id, principal.user_id)
        if self._known(key, principal.name):
            return
        while (writing := self._writing.get(key)) is not None:
            await asyncio.shield(writing)  # a waiter's cancellation leaves the write alone
            if self._known(key, principal.name):
                return
        done = asyncio.get_running_loop().create_future()
        self._writing[key] = done
        try:
            await self._write(key, principal)
        finally:
            del self._writing[key]
            done.set_result(None)

    async def _write(self, key: tuple[str, uuid.UUID], principal: Principal) -> None:
        name = principal.name.strip() if principal.name else None
        try:
            await self._record(principal, name)
        except (SQLAlchemyError, OSError) as exc:
            # The directory is best effort: a database problem (OSError: the driver could not
            # connect) must not fail the request that carried the token (mentions of this user
            # resolve once a later write works).
            logger.warning("user directory not updated: %s", type(exc).__name__)
            return
        if len(self._written) >= self._cache_size:
            self._written.clear()
        self._written[key] = principal.name

    async def _record(self, principal: Principal, name: str | None) -> None:
        key = (principal.tenant_id, principal.user_id)
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
