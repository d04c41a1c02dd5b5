"""A FastAPI application of your own, with a hero hub mounted at /hubs/chat.

What it shows, top to bottom:

- one JwtValidator shared by the REST API and the hub, so both accept the same tokens;
- tokens come from `Authorization: Bearer` everywhere, and from `?access_token=` only on the
  hub path: browsers cannot set headers on a WebSocket or an EventSource, so SignalR clients
  put the token in the query there, and nowhere else should a token sit in a URL (URLs end
  up in logs and in the Referer header);
- credentialed CORS for one allowed origin, and the same rule for WebSocket upgrades, which
  CORS does not cover (a browser opens a cross-origin WebSocket without any preflight);
- a hub method that trusts only the identity captured when the connection was made
  (`self.context.user`), never a name the client sends;
- a REST endpoint that does its work first and only then tells the connected clients,
  through `hub.context`.

Run it (see README.md):

    EXAMPLE_SIGNING_KEY=... python -m uvicorn examples.fastapi_app.app:app
"""

# No `from __future__ import annotations` here: FastAPI reads the annotations of the
# endpoints below at runtime, and those refer to names local to `api_router`.
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Self

from fastapi import APIRouter, Depends, FastAPI, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.types import Scope

from hero.auth import (
    MIN_SIGNING_KEY_LENGTH,
    AuthenticationError,
    JwtValidator,
    Principal,
    extract_token,
)
from hero.realtime import (
    EndpointOptions,
    Hub,
    HubException,
    HubRoute,
    HubServer,
    HubServerOptions,
    Identity,
    hub_method,
)
from hero.web import CredentialedCorsMiddleware, origin_checker

HUB_PATH = "/hubs/chat"
MAX_TEXT = 2000


@dataclass(frozen=True)
class ExampleSettings:
    """Everything the app reads from the environment, checked once at import time."""

    signing_key: str
    issuer: str = "hero.local"
    audience: str = "hero.clients"
    allowed_origin: str = "http://localhost:5173"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Self:
        """Fail with one clear sentence rather than a traceback from deep inside PyJWT.

        The issuer and audience default to `hero token`'s, so
        `JwtOptions__SigningKey=$EXAMPLE_SIGNING_KEY hero token ...` mints tokens for this app.
        """
        key = environ.get("EXAMPLE_SIGNING_KEY", "")
        if len(key) < MIN_SIGNING_KEY_LENGTH:
            problem = "is not set" if not key else f"is too short ({len(key)} characters)"
            raise SystemExit(
                f"fastapi_app: EXAMPLE_SIGNING_KEY {problem}; set it to the HMAC key your "
                f"tokens are signed with (at least {MIN_SIGNING_KEY_LENGTH} characters)."
            )
        return cls(
            signing_key=key,
            issuer=environ.get("EXAMPLE_ISSUER", cls.issuer),
            audience=environ.get("EXAMPLE_AUDIENCE", cls.audience),
            allowed_origin=environ.get("EXAMPLE_ALLOWED_ORIGIN", cls.allowed_origin),
        )


def team_group(tenant_id: str) -> str:
    """Every connection of a tenant joins this group, so sends stay inside the tenant."""
    return f"team:{tenant_id}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


# ------------------------------------------------------------------------------ the hub


class ChatHub(Hub):
    """Clients call `SendMessage(text)` and listen for `ReceiveMessage` and
    `AnnouncementPosted`.

    A hub object lives for one call: state that must outlive it goes elsewhere (here, the
    groups of the lifetime manager).
    """

    def caller(self) -> Principal:
        """The principal our `authenticate` produced when this connection was negotiated."""
        principal = self.context.user
        if not isinstance(principal, Principal):  # unreachable: authentication is required
            raise HubException("Not signed in.")
        return principal

    async def on_connected(self) -> None:
        await self.groups.add(self.context.connection_id, team_group(self.caller().tenant_id))

    @hub_method
    async def send_message(self, text: str) -> dict[str, Any]:
        """Broadcast `text` to the caller's team, signed with the token's identity.

        The author is not an argument: a client could put anyone's name there. A
        HubException's message reaches the caller; any other error shows as a generic one.
        """
        text = text.strip()
        if not text or len(text) > MAX_TEXT:
            raise HubException(f"A message has 1 to {MAX_TEXT} characters.")
        principal = self.caller()
        message = {
            "userId": principal.user_key,
            "name": principal.name or principal.user_key,
            "text": text,
            "at": now_iso(),
        }
        await self.clients.group(team_group(principal.tenant_id)).send("ReceiveMessage", message)
        return message


# ------------------------------------------------------------------------------ REST side


class AnnouncementIn(BaseModel):
    text: str = Field(min_length=1, max_length=MAX_TEXT)


@dataclass
class AnnouncementBoard:
    """Stands in for your database: the announcements are the source of truth, the hub
    event only says "something changed" to whoever is connected right now."""

    items: list[dict[str, Any]] = field(default_factory=list)

    def add(self, principal: Principal, text: str) -> dict[str, Any]:
        announcement = {
            "id": str(uuid.uuid4()),
            "tenantId": principal.tenant_id,
            "authorUserId": principal.user_key,
            "text": text,
            "createdAtUtc": now_iso(),
        }
        self.items.append(announcement)
        return announcement

    def of_tenant(self, tenant_id: str) -> list[dict[str, Any]]:
        return [a for a in self.items if a["tenantId"] == tenant_id]


def api_router(validator: JwtValidator, hub: HubServer, board: AnnouncementBoard) -> APIRouter:
    """`/api/announcements`: bearer header only (HTTPBearer never looks at the query)."""
    bearer = HTTPBearer(auto_error=False)

    def current_principal(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> Principal:
        challenge = {"WWW-Authenticate": "Bearer"}
        if credentials is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, "A bearer token is required.", challenge
            )
        try:
            return validator.validate(credentials.credentials)
        except AuthenticationError:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, "The bearer token is not valid.", challenge
            ) from None

    Caller = Annotated[Principal, Depends(current_principal)]
    router = APIRouter(prefix="/api")

    @router.post("/announcements", status_code=status.HTTP_201_CREATED)
    async def post_announcement(body: AnnouncementIn, caller: Caller) -> dict[str, Any]:
        """Do the work first, then tell the connected clients.

        With a real database: commit, then send. A send before the commit could announce
        something that is then rolled back; hero's platform goes one step further and stores
        the event in the same transaction (a transactional outbox, docs/delivery.md).
        """
        announcement = board.add(caller, body.text.strip())
        await hub.context.clients.group(team_group(caller.tenant_id)).send(
            "AnnouncementPosted", announcement
        )
        return announcement

    @router.get("/announcements")
    async def list_announcements(caller: Caller) -> list[dict[str, Any]]:
        """What a client reads after (re)connecting: hub events sent while it was away are
        not replayed."""
        return board.of_tenant(caller.tenant_id)

    return router


# ------------------------------------------------------------------------------ assembly


def create_app(settings: ExampleSettings) -> FastAPI:
    validator = JwtValidator(settings.issuer, settings.audience, settings.signing_key)
    # One rule for CORS and for WebSocket upgrades; origins are compared normalised
    # (`https://x:443` is `https://x`).
    allowed = origin_checker((settings.allowed_origin,), allow_all=False)

    async def authenticate(scope: Scope) -> Identity | None:
        """Called by the hub endpoint at negotiate and at connect; None means 401.

        The Identity is captured once per connection: hub methods see it as
        `self.context.user`, `clients.user(id)` targets `user_id`, and the hub closes the
        connection when the validator stops accepting the token (`expires_at`: its `exp`
        plus the clock skew), letting the client reconnect with a fresh one.
        """
        token = extract_token(scope, query_token_paths=(HUB_PATH,))
        if token is None:
            return None
        try:
            principal = validator.validate(token)
        except AuthenticationError:
            return None
        return Identity(
            user_id=principal.user_key,
            principal=principal,
            expires_at=validator.accepted_until(principal),
        )

    hub = HubServer(
        ChatHub,
        # Refuse anonymous callers with 401 at negotiate (the default lets them in as
        # anonymous, which suits public hubs).
        options=HubServerOptions(endpoint=EndpointOptions(require_authentication=True)),
        authenticate=authenticate,
        # Browsers send Origin on a WebSocket upgrade; other clients (Node, Python, .NET)
        # usually send none, and those the check lets through.
        origin_allowed=lambda origin, scope: allowed(origin),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Starts the lifetime manager (a Valkey backplane, if you pass one) and, at
        # shutdown, ends every open connection cleanly.
        async with hub.lifespan():
            yield

    app = FastAPI(title="hero FastAPI example", lifespan=lifespan)
    app.add_middleware(CredentialedCorsMiddleware, origin_allowed=allowed)
    app.include_router(api_router(validator, hub, AnnouncementBoard()))
    # HubRoute, not app.mount: SignalR clients use both `/hubs/chat` and
    # `/hubs/chat/negotiate`, and Mount only matches the second.
    app.router.routes.append(HubRoute(HUB_PATH, hub))
    app.state.hubs = (hub,)
    return app


app = create_app(ExampleSettings.from_environ(os.environ))
