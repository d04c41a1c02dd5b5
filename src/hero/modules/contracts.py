"""Interfaces between modules, so that none imports another's internals.

The chat module resolves `@name` mentions through a `UserLookup` and creates mention
notifications through a `NotificationSink`, inside its own unit of work, so the
notification commits (and is published) with the message.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Protocol
from uuid import UUID

from hero.data import UnitOfWork


class UserLookup(Protocol):
    """The users the platform has seen in valid tokens, per tenant."""

    async def resolve_names(
        self, work: UnitOfWork, tenant_id: str, names: Collection[str]
    ) -> dict[str, UUID]:
        """Lower-cased display name -> user id, for the names known in `tenant_id`."""
        ...


class NotificationSink(Protocol):
    """Creates a notification in the caller's transaction and publishes its event there."""

    async def notify(
        self,
        work: UnitOfWork,
        tenant_id: str,
        user_id: UUID,
        *,
        type: str,
        title: str,
        body: str | None = None,
        link: str | None = None,
        source: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Any:
        """Returns the created notification's DTO (callers may ignore it)."""
        ...
