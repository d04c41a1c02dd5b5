"""JWT bearer validation and minting (docs/platform.md §3), on PyJWT.

Validation follows ASP.NET Core's JwtBearer defaults: signature, issuer, audience, ``exp``
(required) and ``nbf`` (when present) are checked with a clock skew (``leeway_seconds``,
default 120 s); ``iat`` is not validated. The claims are then mapped to a :class:`Principal`
with the contract's precedence rules.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final

import jwt

from hero.auth.errors import AuthenticationError, AuthFailure
from hero.auth.principal import DEFAULT_TENANT, Principal

__all__ = [
    "DEFAULT_LEEWAY_SECONDS",
    "MIN_SIGNING_KEY_LENGTH",
    "NAME_CLAIMS",
    "ROLE_CLAIMS",
    "TENANT_CLAIMS",
    "USER_ID_CLAIMS",
    "JwtValidator",
    "mint_token",
    "principal_from_claims",
]

USER_ID_CLAIMS: Final = (
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier",
    "nameid",
    "sub",
    "uid",
)
"""Claims searched, in order, for the user id; the first present one must be a non-nil UUID."""

TENANT_CLAIMS: Final = ("tenant", "tid", "tenantId")
"""Claims searched, in order, for the tenant; none present means ``root``."""

NAME_CLAIMS: Final = ("name", "unique_name")
"""Claims searched, in order, for the display name."""

ROLE_CLAIMS: Final = (
    "role",
    "roles",
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
)
"""Claims whose values (a string or a list of strings) are all roles of the principal."""

DEFAULT_LEEWAY_SECONDS: Final = 120.0
"""Clock skew tolerated on ``exp`` and ``nbf`` (ASP.NET Core's default ClockSkew)."""

MIN_SIGNING_KEY_LENGTH: Final = 32
"""The shortest HMAC key accepted, in characters (UTF-8 encoded for signing)."""

RECENT_TOKENS: Final = 1024
"""How many recently accepted tokens a validator remembers (oldest forgotten first)."""

_HMAC_ALGORITHMS: Final = {"HS256": 32, "HS384": 48, "HS512": 64}
"""Each accepted algorithm and the shortest key it may use (bytes; RFC 7518 section 3.2)."""


def _check_key(signing_key: str) -> bytes:
    if len(signing_key) < MIN_SIGNING_KEY_LENGTH:
        raise ValueError(f"the signing key must be at least {MIN_SIGNING_KEY_LENGTH} characters")
    return signing_key.encode("utf-8")


def _first(claims: Mapping[str, Any], names: Iterable[str]) -> tuple[str, Any] | None:
    """The first claim in ``names`` that is present (multi-valued claims: their first value)."""
    for name in names:
        value = claims.get(name)
        if isinstance(value, list):
            value = value[0] if value else None
        if value is not None:
            return name, value
    return None


def _user_id(claims: Mapping[str, Any]) -> uuid.UUID:
    found = _first(claims, USER_ID_CLAIMS)
    if found is None:
        raise AuthenticationError(
            AuthFailure.INVALID_USER_ID, "none of nameidentifier, nameid, sub, uid is present"
        )
    name, value = found
    if not isinstance(value, str):
        raise AuthenticationError(AuthFailure.INVALID_USER_ID, f"claim {name!r} is not a string")
    try:
        user_id = uuid.UUID(value.strip())
    except ValueError:
        raise AuthenticationError(
            AuthFailure.INVALID_USER_ID, f"claim {name!r} is not a UUID"
        ) from None
    if user_id.int == 0:
        raise AuthenticationError(AuthFailure.INVALID_USER_ID, f"claim {name!r} is the nil UUID")
    return user_id


def _optional_text(claims: Mapping[str, Any], names: Iterable[str]) -> str | None:
    for name in names:
        found = _first(claims, (name,))
        if found is None:
            continue
        value = found[1]
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise AuthenticationError(AuthFailure.INVALID_CLAIM, f"claim {name!r} is not a string")
        text = str(value).strip()
        _no_control_characters(name, text)
        if text:
            return text
    return None


def _no_control_characters(name: str, text: str) -> None:
    """Claims end up in keys, group names and logs: control characters are refused."""
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in text):
        raise AuthenticationError(
            AuthFailure.INVALID_CLAIM, f"claim {name!r} contains control characters"
        )


def _roles(claims: Mapping[str, Any]) -> frozenset[str]:
    roles: set[str] = set()
    for name in ROLE_CLAIMS:
        value = claims.get(name)
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]
        for item in values:
            if not isinstance(item, str):
                raise AuthenticationError(
                    AuthFailure.INVALID_CLAIM, f"claim {name!r} must be a string or strings"
                )
            _no_control_characters(name, item.strip())
            if item.strip():
                roles.add(item.strip())
    return frozenset(roles)


def principal_from_claims(claims: Mapping[str, Any]) -> Principal:
    """Map validated claims to a :class:`Principal` (docs/platform.md §3 rules).

    User id: the first present of :data:`USER_ID_CLAIMS`, which must be a non-nil UUID.
    Tenant: the first non-empty of :data:`TENANT_CLAIMS`, else ``root``. Name: ``name``, else
    ``unique_name``. Roles: the union of :data:`ROLE_CLAIMS`. Raises
    :class:`AuthenticationError` (``INVALID_USER_ID`` or ``INVALID_CLAIM``).
    """
    exp = claims.get("exp")
    expires_at: float | None = None
    if isinstance(exp, int | float) and not isinstance(exp, bool):
        try:
            expires_at = float(exp)
        except OverflowError:
            raise AuthenticationError(
                AuthFailure.INVALID_CLAIM, "claim 'exp' is out of range"
            ) from None
        if not math.isfinite(expires_at):
            raise AuthenticationError(AuthFailure.INVALID_CLAIM, "claim 'exp' is out of range")
    return Principal(
        user_id=_user_id(claims),
        tenant_id=_optional_text(claims, TENANT_CLAIMS) or DEFAULT_TENANT,
        name=_optional_text(claims, NAME_CLAIMS),
        roles=_roles(claims),
        claims=MappingProxyType(dict(claims)),
        expires_at=expires_at,
    )


class JwtValidator:
    """Validates HMAC-signed bearer tokens and returns their :class:`Principal`.

    Invariants: only the HMAC algorithms in ``algorithms`` are accepted (``none`` never is);
    the key is at least :data:`MIN_SIGNING_KEY_LENGTH` characters, and long enough for every
    allowed algorithm (48 bytes for HS384, 64 for HS512); ``exp`` is required. The validator's
    settings are immutable and it is safe to share; it keeps a bounded cache of the tokens it
    accepted recently (see :meth:`validate`).
    """

    def __init__(
        self,
        issuer: str,
        audience: str,
        signing_key: str,
        algorithms: Sequence[str] = ("HS256",),
        leeway_seconds: float = DEFAULT_LEEWAY_SECONDS,
    ) -> None:
        unsupported = [alg for alg in algorithms if alg not in _HMAC_ALGORITHMS]
        if unsupported or not algorithms:
            raise ValueError(
                f"algorithms must be a non-empty subset of {sorted(_HMAC_ALGORITHMS)}"
                f" (got {list(algorithms)})"
            )
        if not math.isfinite(leeway_seconds) or leeway_seconds < 0:
            raise ValueError("leeway_seconds must be a finite, non-negative number")
        self._key = _check_key(signing_key)
        for alg in algorithms:
            if len(self._key) < _HMAC_ALGORITHMS[alg]:
                raise ValueError(
                    f"{alg} needs a signing key of at least {_HMAC_ALGORITHMS[alg]} bytes"
                )
        self._issuer = issuer
        self._audience = audience
        self._algorithms = tuple(algorithms)
        self._leeway = leeway_seconds
        self._recent: dict[str, tuple[Principal, float]] = {}

    @property
    def issuer(self) -> str:
        """The only accepted ``iss``."""
        return self._issuer

    @property
    def audience(self) -> str:
        """The audience that ``aud`` must contain."""
        return self._audience

    @property
    def leeway_seconds(self) -> float:
        """The clock skew tolerated on ``exp`` and ``nbf``."""
        return self._leeway

    def accepted_until(self, principal: Principal) -> float | None:
        """The instant (epoch seconds) from which this validator refuses ``principal``'s
        token: its ``exp`` plus the clock skew; None for a principal without ``exp``.

        A live connection must end at this instant, not at ``exp``: a reconnect between the
        two would pass :meth:`validate` again and be closed again at once, in a loop.
        """
        if principal.expires_at is None:
            return None
        return principal.expires_at + self._leeway

    def validate(self, token: str) -> Principal:
        """Validate ``token`` and map its claims; raises :class:`AuthenticationError`.

        A token that passed recently is answered from a bounded cache keyed by the token's
        text (an HMAC check and the claim mapping per request are the costly part); a cached
        answer is only given while the token is still accepted (``exp`` plus the leeway).
        """
        cached = self._recent.get(token)
        if cached is not None:
            principal, until = cached
            if time.time() < until:
                return principal
            del self._recent[token]
        principal = self._validate(token)
        accepted = self.accepted_until(principal)
        if accepted is not None:
            if len(self._recent) >= RECENT_TOKENS:
                del self._recent[next(iter(self._recent))]  # the oldest entry
            self._recent[token] = (principal, accepted)
        return principal

    def _validate(self, token: str) -> Principal:
        # One parse of the token: PyJWT checks the header's alg against the allowed list
        # before the signature and the claims; the header is read again only to say which
        # alg was refused.
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=list(self._algorithms),
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud"], "verify_iat": False},
            )
        except UnicodeError:  # a lone surrogate in the text
            raise AuthenticationError(AuthFailure.MALFORMED) from None
        except jwt.InvalidAlgorithmError:
            raise self._refused_alg(token) from None
        except jwt.ExpiredSignatureError:
            raise AuthenticationError(AuthFailure.EXPIRED) from None
        except jwt.ImmatureSignatureError:
            raise AuthenticationError(AuthFailure.NOT_YET_VALID) from None
        except jwt.InvalidSignatureError:
            raise AuthenticationError(AuthFailure.BAD_SIGNATURE) from None
        except jwt.MissingRequiredClaimError as error:
            raise AuthenticationError(AuthFailure.MISSING_CLAIM, error.claim) from None
        except jwt.InvalidIssuerError:
            raise AuthenticationError(AuthFailure.WRONG_ISSUER) from None
        except jwt.InvalidAudienceError:
            raise AuthenticationError(AuthFailure.WRONG_AUDIENCE) from None
        except jwt.DecodeError:
            raise AuthenticationError(AuthFailure.MALFORMED) from None
        except jwt.PyJWTError as error:
            raise AuthenticationError(AuthFailure.MALFORMED, type(error).__name__) from None
        return principal_from_claims(claims)

    def _refused_alg(self, token: str) -> AuthenticationError:
        try:
            alg = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError:
            alg = None
        shown = alg if isinstance(alg, str) else type(alg).__name__
        return AuthenticationError(
            AuthFailure.ALGORITHM_NOT_ALLOWED,
            f"alg {shown!r} (allowed: {', '.join(self._algorithms)})",
        )


def mint_token(
    signing_key: str,
    issuer: str,
    audience: str,
    user_id: uuid.UUID | str,
    *,
    name: str | None = None,
    tenant: str | None = None,
    roles: Iterable[str] = (),
    ttl_seconds: float = 3600,
    now: float | None = None,
    extra_claims: Mapping[str, Any] | None = None,
) -> str:
    """Sign an HS256 access token (for ``hero token`` and tests).

    Claims: ``sub`` (``str(user_id)``, not validated, so tests can mint bad ids), ``iss``,
    ``aud``, ``iat``/``nbf`` (``now``, epoch seconds, default the current time), ``exp``
    (``now + ttl_seconds``), ``jti``, and ``name``, ``tenant``, ``role`` (a list) when given;
    ``extra_claims`` are merged last. The key must be at least 32 characters.
    """
    if not ttl_seconds > 0:
        raise ValueError("ttl_seconds must be positive")
    issued = time.time() if now is None else now
    payload: dict[str, Any] = {
        "sub": str(user_id),
        "iss": issuer,
        "aud": audience,
        "iat": int(issued),
        "nbf": int(issued),
        "exp": int(issued + ttl_seconds),
        "jti": uuid.uuid4().hex,
    }
    if name is not None:
        payload["name"] = name
    if tenant is not None:
        payload["tenant"] = tenant
    role_list = list(roles)
    if role_list:
        payload["role"] = role_list
    if extra_claims:
        payload.update(extra_claims)
    return jwt.encode(payload, _check_key(signing_key), algorithm="HS256")
