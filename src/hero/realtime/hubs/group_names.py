"""What a group name may be, and the errors `Groups` raises (docs/hubs.md, "Limits").

The errors are HubExceptions, so raised inside a hub method their text reaches the client
as the invocation's error (and nothing is logged); `GroupNameError` is also a ValueError,
which is what server code passing a bad name should expect.
"""

from __future__ import annotations

import re

from hero.realtime.runtime import HubException

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


class GroupNameError(HubException, ValueError):
    """A group name that is empty, too long, or holds a control character."""


class GroupLimitError(HubException):
    """A connection asked to join a group while it is in as many as it may be."""


def group_name_problem(name: str, maximum_length: int) -> str | None:
    """Why `name` cannot be a group name, or None when it can.

    Control characters are U+0000-U+001F and U+007F-U+009F (C0, DEL, C1).
    """
    if not name:
        return "Group names cannot be empty."
    if len(name) > maximum_length:
        return f"Group names are limited to {maximum_length} characters (got {len(name)})."
    found = _CONTROL.search(name)
    if found is not None:
        return (
            f"Group names cannot contain control characters "
            f"(U+{ord(found.group()):04X} at position {found.start()})."
        )
    return None
