"""Schemathesis against the platform's own `/openapi.json`, in-process.

The app is built exactly as in production (`create_app`) on a throwaway SQLite file; its
lifespan (migrations, the outbox dispatcher, the hub) runs for the whole module.
Schemathesis' ASGI transport drives it: the first request starts the lifespan on the
transport's event-loop thread, every later request goes to the same loop, and the module
fixture shuts it down at the end.

Two bounded, seeded runs: every operation with generated values (path ids are random UUIDs,
so mostly 404s and 400s), then the operations on one channel and one message with the
path ids fixed to seeded rows, so the handlers behind the 404 get exercised too.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis import Case, CheckContext, Response
from schemathesis.python import asgi

from hero.auth import mint_token
from hero.platform.app import create_app
from hero.platform.settings import Settings, load_settings
from tests.app.test_chat_api import KEY

USER = uuid.UUID("5e1f0c3a-0000-4000-8000-00000000f022")
TENANT = "fuzz"
TOKEN = mint_token(
    KEY, "hero.local", "hero.clients", USER, name="fuzzer", tenant=TENANT, roles=["admin"]
)
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
API = "/api/v1/chat"
EXAMPLES = 25
SEEDED_ID = re.compile(r"\{(channel_id|message_id)\}")
SEED = 20240611

# `GET /notifications` is a Server-Sent Events stream that stays open until the client
# leaves; every example would wait for the request timeout. tests/integration covers it.
STREAMS = ["/notifications"]


@dataclass
class Seeded:
    app: Any
    channel_id: str
    message_id: str


def config() -> schemathesis.Config:
    """Every built-in response check except the two that compare the data with the outcome:
    the schema gives shapes, not the rules behind a 400 (a body that is only whitespace, a
    messageId of another channel), and pydantic's lax mode takes `0` for false. The failing
    field of those 400s is checked by `problem_json_errors` instead."""
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "headers": HEADERS,
            "generation": {"max-examples": EXAMPLES, "deterministic": True, "database": "none"},
            "checks": {
                "positive_data_acceptance": {"enabled": False},
                "negative_data_rejection": {"enabled": False},
            },
            "operations": [
                {
                    # PUT /channels/discover is PUT /channels/{channel_id} with a channel id
                    # that is not a UUID: 400 naming channel_id, not 405, and the Allow of
                    # a 405 there names DELETE and PUT too.
                    "include-name": f"GET {API}/channels/discover",
                    "checks": {
                        "unsupported_method": {"enabled": False},
                        "allow_header_conformance": {"enabled": False},
                    },
                }
            ],
        }
    )


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    folder: Path = tmp_path_factory.mktemp("fuzz")
    app = create_app(platform_settings(f"sqlite+aiosqlite:///{folder / 'hero.db'}"))
    try:
        with asgi.get_client(app) as client:  # starts the lifespan; it outlives the block
            created = client.post(
                f"{API}/channels",
                json={"name": "fuzz", "description": "seeded", "isPrivate": False},
                headers=HEADERS,
            )
            assert created.status_code == 201, created.text
            channel_id = created.json()["id"]
            posted = client.post(
                f"{API}/channels/{channel_id}/messages", json={"body": "hello"}, headers=HEADERS
            )
            assert posted.status_code == 201, posted.text
            message_id = posted.json()["id"]
        yield Seeded(app, channel_id, message_id)
    finally:
        asgi.shutdown_lifespans()


def problem_json_errors(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Every 4xx/5xx of the REST API is RFC 9457 problem+json with the status repeated."""
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type == "application/problem+json", (
        f"{response.status_code} answered with {content_type!r}: {response.text[:200]}"
    )
    body = response.json()
    assert body["status"] == response.status_code
    assert body["type"].startswith("https://tools.ietf.org/html/rfc")
    if response.status_code == 400:
        assert body.get("field"), f"a 400 names the failing field: {body}"
    return True


def platform_settings(database: str) -> Settings:
    """Without `RateLimiting`: schemathesis sends a couple of thousand requests with one
    token within seconds, and 429s (documented as `4XX`) would stand in for the answers
    under test. The limits have their own tests (tests/app/test_rate_limits.py)."""
    return load_settings(
        None,
        {
            "JwtOptions__SigningKey": KEY,
            "DatabaseOptions__ConnectionString": database,
            "RateLimiting__Enabled": "false",
        },
    )


# The document is read at import from an app that never starts (create_app does no I/O),
# so pytest can parametrize by operation; test_schema_is_what_the_app_serves pins it to
# what the running app serves at /openapi.json.
SPEC = create_app(platform_settings("sqlite+aiosqlite:///:memory:")).openapi()
schema = schemathesis.openapi.from_dict(SPEC, config=config())


def test_schema_is_what_the_app_serves(seeded: Seeded) -> None:
    with asgi.get_client(seeded.app) as client:
        assert client.get("/openapi.json").json() == SPEC


@schema.exclude(path=STREAMS).parametrize()
def test_every_operation(case: Case, seeded: Seeded) -> None:
    case.call_and_validate(app=seeded.app, additional_checks=[problem_json_errors])


def no_seeded_id(ctx: Any) -> bool:
    return not SEEDED_ID.search(ctx.operation.path)


# `exclude`, not `include`: with `operations` in the config, schemathesis adds an include
# filter that lets everything through, and includes are OR-ed.
@schema.exclude(no_seeded_id).parametrize()
def test_seeded_ids(case: Case, seeded: Seeded) -> None:
    for name, value in (("channel_id", seeded.channel_id), ("message_id", seeded.message_id)):
        if name in (case.path_parameters or {}):
            case.path_parameters[name] = value
    case.call_and_validate(app=seeded.app, additional_checks=[problem_json_errors])
