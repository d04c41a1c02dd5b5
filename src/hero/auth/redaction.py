"""Keep tokens out of logs (docs/platform.md §3: access logs redact ``access_token``)."""

from __future__ import annotations

import logging
import re
from typing import Final

__all__ = ["REDACTED", "RedactTokensFilter", "redact_query"]

REDACTED: Final = "***"
"""What a redacted token value is replaced with."""

_TOKEN_VALUE: Final = re.compile(r"(?i)(^|[?&;])(access_token=)[^&;#\s\"']*")


def redact_query(query: str) -> str:
    """``query`` with every ``access_token`` value replaced by ``***``.

    Accepts a bare query string (``a=1&access_token=x``) or a path with one
    (``/realtime/hub?id=1&access_token=x``); everything else is kept byte for byte. The
    parameter name matches case-insensitively; an empty value is still marked as redacted.
    """
    if "access_token" not in query.lower():
        return query
    return _TOKEN_VALUE.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", query)


class RedactTokensFilter(logging.Filter):
    """A logging filter that redacts ``access_token`` values from records; never drops one.

    It rewrites string arguments in ``record.args`` (uvicorn's access log passes
    ``(client_addr, method, full_path, http_version, status_code)``, its WebSocket log lines
    ``(client_addr, path_with_query)``) and a string ``record.msg``. Attach it to the
    ``uvicorn.access`` and ``uvicorn.error`` loggers (``logger.addFilter``) after logging is
    configured.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_query(record.msg)
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(redact_query(a) if isinstance(a, str) else a for a in args)
        elif isinstance(args, dict):
            record.args = {k: redact_query(v) if isinstance(v, str) else v for k, v in args.items()}
        return True
