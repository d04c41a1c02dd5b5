"""JWT validation, claim mapping, token extraction and log redaction (docs/platform.md §3)."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import jwt
import pytest

from hero.auth import (
    DEFAULT_QUERY_TOKEN_PATHS,
    AuthenticationError,
    AuthFailure,
    JwtValidator,
    Principal,
    RedactTokensFilter,
    extract_token,
    mint_token,
    path_is_under,
    redact_query,
)

KEY = "test-signing-key-0123456789abcdef-xyz"
OTHER_KEY = "another-signing-key-0123456789abcdef"
ISSUER = "hero.local"
AUDIENCE = "hero.clients"
USER = uuid.UUID("0190a5d2-6f3c-7c4e-9a4b-1234567890ab")

NAMEID_URI = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier"
ROLE_URI = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"


@pytest.fixture
def validator() -> JwtValidator:
    return JwtValidator(ISSUER, AUDIENCE, KEY)


def encode(claims: dict[str, Any], key: str = KEY, algorithm: str = "HS256") -> str:
    now = int(time.time())
    payload: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600}
    payload.update(claims)
    return jwt.encode(payload, key.encode(), algorithm=algorithm)


def refused(validator: JwtValidator, token: str) -> AuthenticationError:
    with pytest.raises(AuthenticationError) as caught:
        validator.validate(token)
    if token:
        assert token not in str(caught.value)
    return caught.value


# --- valid tokens ---------------------------------------------------------------------------


def test_minted_token_round_trips(validator: JwtValidator) -> None:
    token = mint_token(
        KEY, ISSUER, AUDIENCE, USER, name="Ada", tenant="acme", roles=("admin", "ops")
    )
    principal = validator.validate(token)
    assert principal == Principal(
        user_id=USER,
        tenant_id="acme",
        name="Ada",
        roles=frozenset({"admin", "ops"}),
        expires_at=principal.expires_at,
    )
    assert principal.user_key == str(USER)
    assert principal.is_in_role("admin")
    assert not principal.is_in_role("Admin")  # roles are case-sensitive
    assert principal.claims["sub"] == str(USER)
    assert principal.expires_at is not None
    assert principal.expires_at == pytest.approx(time.time() + 3600, abs=5)


def test_defaults_tenant_root_no_name_no_roles(validator: JwtValidator) -> None:
    principal = validator.validate(mint_token(KEY, ISSUER, AUDIENCE, str(USER)))
    assert principal.tenant_id == "root"
    assert principal.name is None
    assert principal.roles == frozenset()


def test_claims_are_read_only(validator: JwtValidator) -> None:
    principal = validator.validate(mint_token(KEY, ISSUER, AUDIENCE, USER))
    with pytest.raises(TypeError):
        principal.claims["sub"] = "x"  # type: ignore[index]


def test_audience_may_be_a_list(validator: JwtValidator) -> None:
    assert validator.validate(encode({"sub": str(USER), "aud": ["other", AUDIENCE]}))


def test_principal_is_hashable_and_refuses_nil() -> None:
    assert hash(Principal(user_id=USER)) == hash(Principal(user_id=USER, claims={"a": [1]}))
    with pytest.raises(ValueError, match="nil"):
        Principal(user_id=uuid.UUID(int=0))


# --- lifetime and clock skew ------------------------------------------------------------------


def test_expired_beyond_the_skew_is_refused(validator: JwtValidator) -> None:
    token = mint_token(KEY, ISSUER, AUDIENCE, USER, ttl_seconds=60, now=time.time() - 60 - 180)
    assert refused(validator, token).reason is AuthFailure.EXPIRED


def test_expired_within_the_skew_is_accepted(validator: JwtValidator) -> None:
    token = mint_token(KEY, ISSUER, AUDIENCE, USER, ttl_seconds=60, now=time.time() - 60 - 60)
    assert validator.validate(token).user_id == USER


def test_not_yet_valid_beyond_the_skew_is_refused(validator: JwtValidator) -> None:
    token = mint_token(KEY, ISSUER, AUDIENCE, USER, now=time.time() + 600)
    assert refused(validator, token).reason is AuthFailure.NOT_YET_VALID


def test_not_yet_valid_within_the_skew_is_accepted(validator: JwtValidator) -> None:
    token = mint_token(KEY, ISSUER, AUDIENCE, USER, now=time.time() + 60)
    assert validator.validate(token).user_id == USER


def test_skew_is_configurable() -> None:
    strict = JwtValidator(ISSUER, AUDIENCE, KEY, leeway_seconds=0)
    token = mint_token(KEY, ISSUER, AUDIENCE, USER, ttl_seconds=60, now=time.time() - 90)
    assert refused(strict, token).reason is AuthFailure.EXPIRED


def test_accepted_until_is_exp_plus_the_skew_the_validator_applies() -> None:
    """Live hub connections end at `accepted_until`: the instant validation starts to fail."""
    validator = JwtValidator(ISSUER, AUDIENCE, KEY, leeway_seconds=30)
    now = time.time()
    inside = validator.validate(
        mint_token(KEY, ISSUER, AUDIENCE, USER, ttl_seconds=10, now=now - 35)
    )
    assert inside.expires_at is not None
    until = validator.accepted_until(inside)
    assert until == inside.expires_at + 30 == validator.leeway_seconds + inside.expires_at
    assert until > now  # accepted now, and for a few more seconds
    beyond = mint_token(KEY, ISSUER, AUDIENCE, USER, ttl_seconds=10, now=now - 45)
    assert refused(validator, beyond).reason is AuthFailure.EXPIRED  # its until has passed
    assert validator.accepted_until(Principal(user_id=USER)) is None  # not from a token


def test_missing_exp_is_refused(validator: JwtValidator) -> None:
    token = jwt.encode({"sub": str(USER), "iss": ISSUER, "aud": AUDIENCE}, KEY.encode())
    error = refused(validator, token)
    assert error.reason is AuthFailure.MISSING_CLAIM
    assert error.detail == "exp"


# --- signature, issuer, audience, algorithm -------------------------------------------------


def test_wrong_signature_is_refused(validator: JwtValidator) -> None:
    token = mint_token(OTHER_KEY, ISSUER, AUDIENCE, USER)
    assert refused(validator, token).reason is AuthFailure.BAD_SIGNATURE


def test_tampered_payload_is_refused(validator: JwtValidator) -> None:
    header, _, signature = mint_token(KEY, ISSUER, AUDIENCE, USER).split(".")
    forged = mint_token(KEY, ISSUER, AUDIENCE, uuid.uuid4()).split(".")[1]
    assert refused(validator, f"{header}.{forged}.{signature}").reason is AuthFailure.BAD_SIGNATURE


def test_wrong_issuer_is_refused(validator: JwtValidator) -> None:
    token = mint_token(KEY, "evil.example", AUDIENCE, USER)
    assert refused(validator, token).reason is AuthFailure.WRONG_ISSUER


def test_wrong_audience_is_refused(validator: JwtValidator) -> None:
    token = mint_token(KEY, ISSUER, "someone-else", USER)
    assert refused(validator, token).reason is AuthFailure.WRONG_AUDIENCE


def test_missing_issuer_is_refused(validator: JwtValidator) -> None:
    token = jwt.encode(
        {"sub": str(USER), "aud": AUDIENCE, "exp": int(time.time()) + 60}, KEY.encode()
    )
    assert refused(validator, token).reason is AuthFailure.MISSING_CLAIM


def test_alg_none_is_refused(validator: JwtValidator) -> None:
    token = jwt.encode(
        {"sub": str(USER), "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 60},
        key=None,
        algorithm="none",
    )
    error = refused(validator, token)
    assert error.reason is AuthFailure.ALGORITHM_NOT_ALLOWED
    assert "none" in str(error)


def test_hs512_is_refused_unless_allowed() -> None:
    long_key = KEY * 2  # HS512 needs 64 bytes
    token = encode({"sub": str(USER)}, key=long_key, algorithm="HS512")
    default = JwtValidator(ISSUER, AUDIENCE, long_key)
    assert refused(default, token).reason is AuthFailure.ALGORITHM_NOT_ALLOWED
    lenient = JwtValidator(ISSUER, AUDIENCE, long_key, algorithms=("HS256", "HS512"))
    assert lenient.validate(token).user_id == USER
    with pytest.raises(ValueError, match="HS512 needs a signing key of at least 64 bytes"):
        JwtValidator(ISSUER, AUDIENCE, KEY, algorithms=("HS512",))


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "a.b", "eyJhbGciOiJIUzI1NiJ9.e30"])
def test_malformed_tokens_are_refused(validator: JwtValidator, token: str) -> None:
    assert refused(validator, token).reason in (
        AuthFailure.MALFORMED,
        AuthFailure.ALGORITHM_NOT_ALLOWED,
    )


def test_garbage_is_malformed(validator: JwtValidator) -> None:
    assert refused(validator, "not a token").reason is AuthFailure.MALFORMED


def test_validator_refuses_weak_configuration() -> None:
    with pytest.raises(ValueError, match="32 characters"):
        JwtValidator(ISSUER, AUDIENCE, "short")
    with pytest.raises(ValueError, match="algorithms"):
        JwtValidator(ISSUER, AUDIENCE, KEY, algorithms=("none",))
    with pytest.raises(ValueError, match="algorithms"):
        JwtValidator(ISSUER, AUDIENCE, KEY, algorithms=("RS256",))
    with pytest.raises(ValueError, match="algorithms"):
        JwtValidator(ISSUER, AUDIENCE, KEY, algorithms=())
    with pytest.raises(ValueError, match="32 characters"):
        mint_token("short", ISSUER, AUDIENCE, USER)


# --- claim rules ------------------------------------------------------------------------------


def test_nil_uuid_is_refused(validator: JwtValidator) -> None:
    token = mint_token(KEY, ISSUER, AUDIENCE, uuid.UUID(int=0))
    error = refused(validator, token)
    assert error.reason is AuthFailure.INVALID_USER_ID
    assert "nil" in str(error)


@pytest.mark.parametrize("value", ["not-a-uuid", "", "42"])
def test_non_uuid_user_id_is_refused(validator: JwtValidator, value: str) -> None:
    assert refused(validator, encode({"sub": value})).reason is AuthFailure.INVALID_USER_ID


def test_missing_user_id_is_refused(validator: JwtValidator) -> None:
    assert refused(validator, encode({"name": "x"})).reason is AuthFailure.INVALID_USER_ID


def test_non_string_user_id_is_refused(validator: JwtValidator) -> None:
    assert refused(validator, encode({"uid": 5})).reason is AuthFailure.INVALID_USER_ID


def test_user_id_precedence(validator: JwtValidator) -> None:
    ids = [uuid.uuid4() for _ in range(4)]
    names = [NAMEID_URI, "nameid", "sub", "uid"]
    for first in range(4):
        claims = {name: str(value) for name, value in zip(names[first:], ids[first:], strict=True)}
        assert validator.validate(encode(claims)).user_id == ids[first]


def test_first_present_user_id_claim_decides_even_if_invalid(validator: JwtValidator) -> None:
    token = encode({"nameid": "auth0|123", "sub": str(USER)})
    assert refused(validator, token).reason is AuthFailure.INVALID_USER_ID


def test_user_id_formats_are_normalised(validator: JwtValidator) -> None:
    principal = validator.validate(encode({"uid": "{" + USER.hex.upper() + "}"}))
    assert principal.user_key == str(USER)


def test_tenant_precedence(validator: JwtValidator) -> None:
    sub = {"sub": str(USER)}
    assert validator.validate(encode({**sub, "tenant": "a", "tid": "b"})).tenant_id == "a"
    assert validator.validate(encode({**sub, "tid": "b", "tenantId": "c"})).tenant_id == "b"
    assert validator.validate(encode({**sub, "tenantId": "c"})).tenant_id == "c"
    assert validator.validate(encode({**sub, "tenant": "", "tid": "b"})).tenant_id == "b"
    assert validator.validate(encode(sub)).tenant_id == "root"


def test_bad_tenant_type_is_refused(validator: JwtValidator) -> None:
    token = encode({"sub": str(USER), "tenant": {"id": "x"}})
    assert refused(validator, token).reason is AuthFailure.INVALID_CLAIM


def test_name_precedence(validator: JwtValidator) -> None:
    sub = {"sub": str(USER)}
    assert validator.validate(encode({**sub, "name": "N", "unique_name": "U"})).name == "N"
    assert validator.validate(encode({**sub, "unique_name": "U"})).name == "U"


def test_roles_from_every_role_claim(validator: JwtValidator) -> None:
    token = encode({"sub": str(USER), "role": "a", "roles": ["b", "c"], ROLE_URI: ["d", "a"]})
    assert validator.validate(token).roles == frozenset({"a", "b", "c", "d"})


def test_bad_role_type_is_refused(validator: JwtValidator) -> None:
    token = encode({"sub": str(USER), "roles": [1, 2]})
    assert refused(validator, token).reason is AuthFailure.INVALID_CLAIM


def test_tokens_from_other_issuers_software_are_accepted(validator: JwtValidator) -> None:
    # e.g. ASP.NET's JwtSecurityTokenHandler: nameid + unique_name + single role string
    token = encode(
        {"nameid": str(USER), "unique_name": "alice", "role": "admin", "jti": "x"},
    )
    principal = validator.validate(token)
    assert (principal.user_id, principal.name, principal.roles) == (
        USER,
        "alice",
        frozenset({"admin"}),
    )


# --- extract_token ----------------------------------------------------------------------------


def scope(
    path: str,
    query: str = "",
    headers: list[tuple[bytes, bytes]] | None = None,
    root_path: str = "",
    kind: str = "http",
) -> dict[str, Any]:
    return {
        "type": kind,
        "path": path,
        "root_path": root_path,
        "query_string": query.encode("latin-1"),
        "headers": headers or [],
    }


@pytest.mark.parametrize(
    "path",
    [
        "/realtime/hub",
        "/realtime/hub/",
        "/realtime/hub/negotiate",
        "/REALTIME/HUB/negotiate",
        "/Realtime/Hub",
        "/api/v1/realtime/hub",
        "/api/v1/realtime/hub/negotiate",
        "/notifications",
        "/Notifications/",
    ],
)
def test_query_token_accepted_on_realtime_paths(path: str) -> None:
    assert extract_token(scope(path, "id=1&access_token=tok")) == "tok"


@pytest.mark.parametrize(
    "path",
    [
        "/realtime/hubx",
        "/realtime",
        "/api/chat",
        "/api/v1/chat/channels",
        "/api/v1/notifications",
        "/notificationsx",
        "/x/realtime/hub",
        "/",
    ],
)
def test_query_token_ignored_elsewhere(path: str) -> None:
    assert extract_token(scope(path, "access_token=tok")) is None


def test_header_wins_over_query() -> None:
    headers = [(b"authorization", b"Bearer from-header")]
    assert extract_token(scope("/realtime/hub", "access_token=q", headers)) == "from-header"
    assert extract_token(scope("/api/v1/chat", "access_token=q", headers)) == "from-header"


def test_header_scheme_and_name_are_case_insensitive() -> None:
    assert extract_token(scope("/api", headers=[(b"Authorization", b"bearer  t1 ")])) == "t1"


def test_non_bearer_header_is_ignored() -> None:
    basic = [(b"authorization", b"Basic dXNlcjpwYXNz")]
    assert extract_token(scope("/api", headers=basic)) is None
    assert extract_token(scope("/realtime/hub", "access_token=q", basic)) == "q"
    assert extract_token(scope("/api", headers=[(b"authorization", b"Bearer ")])) is None


def test_query_token_is_url_decoded_and_empty_is_none() -> None:
    assert extract_token(scope("/notifications", "access_token=a%2Bb%3D")) == "a+b="
    assert extract_token(scope("/notifications", "access_token=")) is None
    assert extract_token(scope("/notifications", "ACCESS_TOKEN=x")) == "x"
    assert extract_token(scope("/notifications", "")) is None


def test_websocket_scope_works_the_same() -> None:
    assert extract_token(scope("/realtime/hub", "access_token=ws", kind="websocket")) == "ws"


def test_root_path_is_considered() -> None:
    mounted = scope("/app/realtime/hub", "access_token=t", root_path="/app")
    assert extract_token(mounted) == "t"
    mounted_elsewhere = scope("/app/api/chat", "access_token=t", root_path="/app")
    assert extract_token(mounted_elsewhere) is None
    legacy = scope("/realtime/hub", "access_token=t", root_path="/app")
    assert extract_token(legacy) == "t"


def test_allowed_paths_are_configurable() -> None:
    assert extract_token(scope("/custom/hub", "access_token=t"), ("/custom/hub",)) == "t"
    assert extract_token(scope("/realtime/hub", "access_token=t"), ("/custom/hub",)) is None
    assert extract_token(scope("/realtime/hub", "access_token=t"), ()) is None
    assert "/api/v1/realtime/hub" in DEFAULT_QUERY_TOKEN_PATHS


def test_path_is_under() -> None:
    assert path_is_under("/a/b/c", "/a/b")
    assert path_is_under("/A/b", "/a/B/")
    assert not path_is_under("/a/bc", "/a/b")
    assert not path_is_under("/a", "/a/b")
    assert path_is_under("/anything", "/")


# --- redaction --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("access_token=abc.def.ghi", "access_token=***"),
        ("id=1&access_token=abc&x=2", "id=1&access_token=***&x=2"),
        ("/realtime/hub?id=1&access_token=a%2Eb", "/realtime/hub?id=1&access_token=***"),
        ("/realtime/hub?Access_Token=abc", "/realtime/hub?Access_Token=***"),
        ("access_token=", "access_token=***"),
        ("my_access_token=abc", "my_access_token=abc"),
        ("/path?a=1", "/path?a=1"),
        ("access_token=a&access_token=b", "access_token=***&access_token=***"),
    ],
)
def test_redact_query(before: str, after: str) -> None:
    assert redact_query(before) == after


def uvicorn_access_record(full_path: str) -> logging.LogRecord:
    """A record shaped exactly like uvicorn's h11/httptools access log call."""
    return logging.LogRecord(
        name="uvicorn.access",
        level=logging.INFO,
        pathname=__file__,
        lineno=1,
        msg='%s - "%s %s HTTP/%s" %d',
        args=("127.0.0.1:50000", "GET", full_path, "1.1", 101),
        exc_info=None,
    )


def test_filter_redacts_uvicorn_access_records() -> None:
    record = uvicorn_access_record("/realtime/hub?id=abc&access_token=SECRET.JWT.VALUE")
    assert RedactTokensFilter().filter(record) is True
    assert record.args == (
        "127.0.0.1:50000",
        "GET",
        "/realtime/hub?id=abc&access_token=***",
        "1.1",
        101,
    )
    message = record.getMessage()
    assert "SECRET" not in message
    assert message == '127.0.0.1:50000 - "GET /realtime/hub?id=abc&access_token=*** HTTP/1.1" 101'


def test_filter_attached_to_a_logger_keeps_tokens_out_of_output(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("test.uvicorn.access")
    redact = RedactTokensFilter()
    logger.addFilter(redact)
    try:
        with caplog.at_level(logging.INFO, logger="test.uvicorn.access"):
            logger.info(
                '%s - "%s %s HTTP/%s" %d',
                "127.0.0.1:1",
                "GET",
                "/notifications?access_token=SECRET",
                "1.1",
                200,
            )
            logger.info(
                '%s - "WebSocket %s" [accepted]', "127.0.0.1:1", "/realtime/hub?access_token=SECRET"
            )
            logger.info("preformatted GET /realtime/hub?access_token=SECRET HTTP/1.1")
    finally:
        logger.removeFilter(redact)
    assert len(caplog.records) == 3
    assert "SECRET" not in caplog.text
    assert caplog.text.count("access_token=***") == 3


def test_filter_leaves_other_records_alone() -> None:
    record = uvicorn_access_record("/api/v1/chat/channels?page=2")
    args_before = record.args
    assert RedactTokensFilter().filter(record) is True
    assert record.args == args_before


def test_review_percent_encoded_query_name_is_not_a_token() -> None:
    """`access%5Ftoken` would be decoded to access_token by a query parser, but the log
    redaction matches the literal name: such a token must not be accepted at all."""
    scope = {
        "type": "http",
        "path": "/realtime/hub/negotiate",
        "root_path": "",
        "headers": [],
        "query_string": b"access%5Ftoken=abc.def.ghi",
    }
    assert extract_token(scope) is None
    scope["query_string"] = b"ACCESS_TOKEN=abc.def.ghi"
    assert extract_token(scope) == "abc.def.ghi"


@pytest.mark.parametrize("claim", ["tenant", "name", "role"])
def test_review_control_characters_in_text_claims_are_refused(claim: str) -> None:
    validator = JwtValidator(ISSUER, AUDIENCE, KEY)
    token = mint_token(KEY, ISSUER, AUDIENCE, uuid.uuid4(), extra_claims={claim: "acme\nevil"})
    with pytest.raises(AuthenticationError) as refused:
        validator.validate(token)
    assert refused.value.reason is AuthFailure.INVALID_CLAIM


def test_review_an_absurd_exp_is_an_invalid_claim_not_a_crash() -> None:
    validator = JwtValidator(ISSUER, AUDIENCE, KEY)
    token = jwt.encode(
        {"sub": str(uuid.uuid4()), "iss": ISSUER, "aud": AUDIENCE, "exp": 10**400},
        KEY,
        algorithm="HS256",
    )
    with pytest.raises(AuthenticationError) as refused:
        validator.validate(token)
    assert refused.value.reason is AuthFailure.INVALID_CLAIM
