"""Web pieces an application needs beside a hub in its own Starlette/FastAPI app.

- `CredentialedCorsMiddleware`: credentialed CORS for an explicit origin allow-list.
- `origin_checker`: the allow-list rule, for CORS and for the hub's WebSocket upgrades
  (`EndpointOptions(origin_allowed=...)`); `origin_allowed_for` adds the request's own origin.
docs/authentication.md shows them in use.
"""

from hero.web.cors import CredentialedCorsMiddleware
from hero.web.origins import (
    ScopeOriginCheck,
    normalize_origin,
    origin_allowed_for,
    origin_checker,
    request_origin,
)

__all__ = [
    "CredentialedCorsMiddleware",
    "ScopeOriginCheck",
    "normalize_origin",
    "origin_allowed_for",
    "origin_checker",
    "request_origin",
]
