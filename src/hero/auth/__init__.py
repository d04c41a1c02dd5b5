"""Authentication: JWT bearer validation, the Principal, and token extraction rules.

HTTP-free: it reads ASGI scopes and tokens and returns plain objects; turning an
:class:`AuthenticationError` into a 401 is the web layer's job.
"""

from hero.auth.errors import AuthenticationError, AuthFailure
from hero.auth.extraction import (
    DEFAULT_QUERY_TOKEN_PATHS,
    QUERY_TOKEN_PARAMETER,
    extract_token,
    path_is_under,
)
from hero.auth.principal import DEFAULT_TENANT, PRINCIPAL_SCOPE_KEY, Principal
from hero.auth.redaction import REDACTED, RedactTokensFilter, redact_query
from hero.auth.tokens import (
    DEFAULT_LEEWAY_SECONDS,
    MIN_SIGNING_KEY_LENGTH,
    NAME_CLAIMS,
    ROLE_CLAIMS,
    TENANT_CLAIMS,
    USER_ID_CLAIMS,
    JwtValidator,
    mint_token,
    principal_from_claims,
)

__all__ = [
    "DEFAULT_LEEWAY_SECONDS",
    "DEFAULT_QUERY_TOKEN_PATHS",
    "DEFAULT_TENANT",
    "MIN_SIGNING_KEY_LENGTH",
    "NAME_CLAIMS",
    "PRINCIPAL_SCOPE_KEY",
    "QUERY_TOKEN_PARAMETER",
    "REDACTED",
    "ROLE_CLAIMS",
    "TENANT_CLAIMS",
    "USER_ID_CLAIMS",
    "AuthFailure",
    "AuthenticationError",
    "JwtValidator",
    "Principal",
    "RedactTokensFilter",
    "extract_token",
    "mint_token",
    "path_is_under",
    "principal_from_claims",
    "redact_query",
]
