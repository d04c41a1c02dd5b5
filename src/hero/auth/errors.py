"""Why a token was refused."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["AuthFailure", "AuthenticationError"]


class AuthFailure(StrEnum):
    """The distinct reasons a bearer token is refused; values are stable, log-safe codes."""

    MALFORMED = "malformed"
    ALGORITHM_NOT_ALLOWED = "algorithm_not_allowed"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    MISSING_CLAIM = "missing_claim"
    WRONG_ISSUER = "wrong_issuer"
    WRONG_AUDIENCE = "wrong_audience"
    INVALID_USER_ID = "invalid_user_id"
    INVALID_CLAIM = "invalid_claim"


_DESCRIPTIONS: dict[AuthFailure, str] = {
    AuthFailure.MALFORMED: "the token is malformed",
    AuthFailure.ALGORITHM_NOT_ALLOWED: "the token's signing algorithm is not allowed",
    AuthFailure.BAD_SIGNATURE: "the token's signature is invalid",
    AuthFailure.EXPIRED: "the token has expired",
    AuthFailure.NOT_YET_VALID: "the token is not valid yet",
    AuthFailure.MISSING_CLAIM: "the token lacks a required claim",
    AuthFailure.WRONG_ISSUER: "the token's issuer is not accepted",
    AuthFailure.WRONG_AUDIENCE: "the token's audience is not accepted",
    AuthFailure.INVALID_USER_ID: "the token has no valid user id",
    AuthFailure.INVALID_CLAIM: "a claim of the token has an invalid value",
}


class AuthenticationError(Exception):
    """A bearer token was refused.

    ``reason`` is the machine-readable cause; ``detail`` is a short, log-safe explanation. The
    text never contains the token itself, so it may be logged and returned in a 401 body.
    """

    def __init__(self, reason: AuthFailure, detail: str | None = None) -> None:
        self.reason = reason
        self.detail = detail
        text = _DESCRIPTIONS[reason]
        super().__init__(f"{text}: {detail}" if detail else text)
