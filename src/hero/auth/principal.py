"""The authenticated caller, as the rest of the platform sees it."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = ["DEFAULT_TENANT", "Principal"]

DEFAULT_TENANT: Final = "root"
"""The tenant of a token that carries no tenant claim (docs/platform.md §3)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated user, captured once (at connect time for hub connections).

    Invariants: ``user_id`` is never the nil UUID; ``tenant_id`` is non-empty; ``roles`` holds
    non-empty strings compared case-sensitively (like ASP.NET's ``IsInRole``); ``claims`` is a
    read-only view of the validated token payload; ``expires_at`` is the token's ``exp`` in
    epoch seconds (``None`` for principals not built from a token).
    """

    user_id: uuid.UUID
    tenant_id: str = DEFAULT_TENANT
    name: str | None = None
    roles: frozenset[str] = frozenset()
    claims: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    expires_at: float | None = None

    def __post_init__(self) -> None:
        if self.user_id.int == 0:
            raise ValueError("the user id must not be the nil UUID")
        if not self.tenant_id:
            raise ValueError("the tenant id must not be empty")

    @property
    def user_key(self) -> str:
        """``user_id`` as the lowercase hyphenated string used on the wire (payloads, rate-limit
        keys); realtime names add the tenant (``hero.conventions.realtime_user``)."""
        return str(self.user_id)

    def is_in_role(self, role: str) -> bool:
        """True when the principal carries ``role`` (exact, case-sensitive match)."""
        return role in self.roles


PRINCIPAL_SCOPE_KEY = "hero.principal"
"""The ASGI scope key under which the web host stores the request's Principal (or None)."""
