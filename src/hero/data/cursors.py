"""Cursors over rows numbered in commit order.

Rows that clients page through or catch up on (chat messages, notifications) carry a `seq`
taken under a lock, so it follows the commit order; their UUIDv7 ids follow the clock of
whichever instance minted them. A cursor is an id a client saw: when it names one of the
rows, the rows after (or before) it are compared by `seq`; any other UUID is compared as a
UUIDv7, by time. A page is ordered by the same column it was filtered on, never a mix.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement


def beyond(
    seq: Any, id_: Any, cursor: uuid.UUID, cursor_seq: int | None, *, later: bool
) -> tuple[ColumnElement[bool], Any]:
    """The condition for the rows after (`later`) or before the cursor, and the column to
    order them by. `cursor_seq` is the cursor row's `seq`, or None when the cursor is none of
    the rows."""
    if cursor_seq is None:
        return (id_ > cursor if later else id_ < cursor), id_
    return (seq > cursor_seq if later else seq < cursor_seq), seq
