"""The validator's cache of recently accepted tokens: same answers as a full validation,
and no answer for a token past `accepted_until`."""

from __future__ import annotations

import time
import uuid

import pytest

from hero.auth import AuthenticationError, AuthFailure, JwtValidator, mint_token
from hero.auth.tokens import RECENT_TOKENS

KEY = "test-signing-key-0123456789abcdef-xyz"
ISSUER = "hero.local"
AUDIENCE = "hero.clients"


def test_a_cached_token_gives_the_same_principal() -> None:
    validator = JwtValidator(ISSUER, AUDIENCE, KEY)
    user = uuid.uuid4()
    token = mint_token(KEY, ISSUER, AUDIENCE, user, name="ann", tenant="acme", roles=["a"])
    first = validator.validate(token)
    again = validator.validate(token)
    assert again == first
    assert (again.user_id, again.tenant_id, again.name, again.roles) == (
        user,
        "acme",
        "ann",
        frozenset({"a"}),
    )


def test_a_cached_token_is_refused_once_it_expires() -> None:
    validator = JwtValidator(ISSUER, AUDIENCE, KEY, leeway_seconds=0)
    # exp is whole seconds: the token expires at the next second boundary or the one after
    token = mint_token(KEY, ISSUER, AUDIENCE, uuid.uuid4(), ttl_seconds=1)
    principal = validator.validate(token)  # accepted, and now cached
    until = validator.accepted_until(principal)
    assert until is not None
    time.sleep(max(0.0, until - time.time()) + 0.05)  # one wait past the expiry, no polling
    with pytest.raises(AuthenticationError) as caught:
        validator.validate(token)
    assert caught.value.reason is AuthFailure.EXPIRED


def test_refused_tokens_are_not_cached_and_the_cache_is_bounded() -> None:
    validator = JwtValidator(ISSUER, AUDIENCE, KEY)
    other = JwtValidator(ISSUER, AUDIENCE, "another-signing-key-0123456789abcdef")
    forged = mint_token("another-signing-key-0123456789abcdef", ISSUER, AUDIENCE, uuid.uuid4())
    other.validate(forged)
    for _ in range(2):
        with pytest.raises(AuthenticationError) as caught:
            validator.validate(forged)
        assert caught.value.reason is AuthFailure.BAD_SIGNATURE
    tokens = [mint_token(KEY, ISSUER, AUDIENCE, uuid.uuid4()) for _ in range(RECENT_TOKENS + 5)]
    for token in tokens:
        validator.validate(token)
    assert len(validator._recent) == RECENT_TOKENS
    assert tokens[0] not in validator._recent
    assert validator.validate(tokens[0]).user_id  # still valid: validated again
