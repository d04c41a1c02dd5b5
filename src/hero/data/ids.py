"""Identifiers: UUIDv7 (RFC 9562 section 5.7), time-ordered, for everything hero creates."""

from __future__ import annotations

import uuid

from uuid_utils.compat import uuid7


def new_id() -> uuid.UUID:
    """A new UUIDv7: later calls in one process sort after earlier ones."""
    return uuid7()
