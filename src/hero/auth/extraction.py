"""Where a request's bearer token comes from (docs/platform.md §3).

``Authorization: Bearer <token>`` is read everywhere. Browsers cannot set headers on a
WebSocket or EventSource, so the ``access_token`` query parameter is also read, but only on
the realtime paths: a path matches an allowed prefix segment-wise and case-insensitively
(``/realtime/hub`` matches ``/realtime/hub``, ``/Realtime/Hub/negotiate`` and
``/realtime/hub/``, never ``/realtime/hubx``), like ASP.NET's ``PathString.StartsWithSegments``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import unquote_plus

__all__ = ["DEFAULT_QUERY_TOKEN_PATHS", "QUERY_TOKEN_PARAMETER", "extract_token", "path_is_under"]

DEFAULT_QUERY_TOKEN_PATHS: Final = ("/realtime/hub", "/api/v1/realtime/hub", "/notifications")
"""Path prefixes on which ``?access_token=`` is honoured (the hub, its alias, the SSE feed)."""

QUERY_TOKEN_PARAMETER: Final = "access_token"
"""The query parameter SignalR clients put the token in (matched case-insensitively)."""


def _segments(path: str) -> list[str]:
    return path.lower().split("/")


def path_is_under(path: str, prefix: str) -> bool:
    """True when ``path`` equals ``prefix`` or continues it with ``/`` (case-insensitive)."""
    prefix_parts = _segments(prefix.rstrip("/"))
    path_parts = _segments(path)
    if prefix_parts == [""]:  # the root prefix "/" matches everything
        return True
    return path_parts[: len(prefix_parts)] == prefix_parts


def _candidate_paths(scope: Mapping[str, Any]) -> list[str]:
    """The path relative to the application's mount point, and the full path."""
    path = str(scope.get("path") or "")
    root_path = str(scope.get("root_path") or "").rstrip("/")
    candidates = [path]
    if root_path and path_is_under(path, root_path):
        candidates.append(path[len(root_path) :] or "/")
    return candidates


def _bearer(scope: Mapping[str, Any]) -> str | None:
    for name, value in scope.get("headers") or ():
        if bytes(name).lower() != b"authorization":
            continue
        scheme, _, token = bytes(value).decode("latin-1").strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None  # only the first Authorization header counts
    return None


def _query_token(scope: Mapping[str, Any]) -> str | None:
    """The `access_token` query value. The name must be spelled literally (any case, but
    not percent-encoded): the log redaction matches that same spelling, so a token that is
    accepted is also a token that is redacted."""
    raw = scope.get("query_string") or b""
    query = bytes(raw).decode("latin-1")
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if name.lower() == QUERY_TOKEN_PARAMETER:
            return unquote_plus(value).strip() or None
    return None


def extract_token(
    scope: Mapping[str, Any], query_token_paths: Sequence[str] = DEFAULT_QUERY_TOKEN_PATHS
) -> str | None:
    """The bearer token of an ASGI HTTP/WebSocket ``scope``, or ``None``.

    The ``Authorization: Bearer`` header wins. Otherwise ``access_token`` from the query string
    is returned when the request path (with or without the scope's ``root_path``) is under one
    of ``query_token_paths``; on any other path the query token is ignored. Never validates.
    """
    token = _bearer(scope)
    if token is not None:
        return token
    if not query_token_paths:
        return None
    paths = _candidate_paths(scope)
    if any(path_is_under(path, prefix) for path in paths for prefix in query_token_paths):
        return _query_token(scope)
    return None
