"""The demo chat at `/`: a page, its script and style, the official SignalR browser builds, and
(in Development only) a sign-in that mints tokens for a few demo users.

The browser builds of `@microsoft/signalr` and `@microsoft/signalr-protocol-msgpack` are not
part of the repository: `scripts/setup` installs them with npm into `web/node_modules`, and
they are served from there under `/demo/vendor/`. Without them the page says how to get them.

In Production there is no sign-in: `/demo/token` answers 404 and the page asks for an access
token instead, so a production deployment never hands out tokens to whoever asks.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from hero.auth import mint_token
from hero.platform.settings import Settings
from hero.platform.web import problem

DEMO_TENANT = "demo"
TOKEN_TTL_SECONDS = 3600
STATIC = Path(__file__).resolve().parent / "static"
ASSETS = Path(__file__).resolve().parents[4] / "web" / "node_modules"
"""Where `scripts/setup` puts the npm packages (the checkout's `web/node_modules`)."""

_VENDOR = {
    "signalr.min.js": "@microsoft/signalr/dist/browser/signalr.min.js",
    "signalr-protocol-msgpack.min.js": (
        "@microsoft/signalr-protocol-msgpack/dist/browser/signalr-protocol-msgpack.min.js"
    ),
}
_PAGE_FILES = {"demo.js": "text/javascript", "demo.css": "text/css"}
_NAMESPACE = uuid.UUID("5b0a4f8e-3c4d-4b7a-9a52-0d3f6f1c2e10")


@dataclass(frozen=True)
class DemoUser:
    login: str
    name: str
    roles: tuple[str, ...] = ()

    @property
    def user_id(self) -> uuid.UUID:
        return uuid.uuid5(_NAMESPACE, self.login)

    def to_json(self) -> dict[str, object]:
        return {"login": self.login, "name": self.name, "userId": str(self.user_id)}


DEMO_USERS = (
    DemoUser("alice", "Alice", ("admin",)),
    DemoUser("bob", "Bob"),
    DemoUser("carol", "Carol"),
    DemoUser("dave", "Dave"),
)


def demo_routes(settings: Settings, *, assets: Path = ASSETS) -> list[BaseRoute]:
    """The routes of the demo page; `assets` is the `node_modules` folder of the browser builds."""
    sign_in = not settings.is_production
    users = {user.login: user for user in DEMO_USERS}

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def page_file(request: Request) -> Response:
        name = request.path_params["name"]
        media_type = _PAGE_FILES.get(name)
        if media_type is None:
            return problem(404, "Not Found", f"The demo has no file {name!r}.")
        return FileResponse(
            STATIC / name, media_type=media_type, headers={"Cache-Control": "no-cache"}
        )

    async def vendor(request: Request) -> Response:
        name = request.path_params["name"]
        relative = _VENDOR.get(name)
        if relative is None:
            return problem(404, "Not Found", f"The demo has no vendor file {name!r}.")
        path = assets / relative
        if not path.is_file():
            return problem(
                404,
                "Browser client not installed",
                "Run scripts/setup (it installs the official SignalR browser build with npm).",
            )
        return FileResponse(
            path, media_type="text/javascript", headers={"Cache-Control": "public, max-age=3600"}
        )

    async def config(request: Request) -> Response:
        return JSONResponse(
            {
                "signIn": sign_in,
                "tenant": DEMO_TENANT,
                "users": [user.to_json() for user in DEMO_USERS] if sign_in else [],
                "clientInstalled": all((assets / p).is_file() for p in _VENDOR.values()),
            }
        )

    async def token(request: Request) -> Response:
        if not sign_in:
            return problem(404, "Not Found", "Demo sign-in is off in Production.")
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return problem(400, "Invalid body", 'The body must be JSON: {"login": "alice"}.')
        login = body.get("login") if isinstance(body, dict) else None
        user = users.get(login) if isinstance(login, str) else None
        if user is None:
            known = ", ".join(users)
            return problem(400, "Unknown demo user", f"login must be one of: {known}.")
        jwt = settings.jwt
        access_token = mint_token(
            jwt.signing_key,
            jwt.issuer,
            jwt.audience,
            user.user_id,
            name=user.name,
            tenant=DEMO_TENANT,
            roles=user.roles,
            ttl_seconds=TOKEN_TTL_SECONDS,
        )
        return JSONResponse(
            {"accessToken": access_token, "expiresIn": TOKEN_TTL_SECONDS, **user.to_json()},
            headers={"Cache-Control": "no-store"},
        )

    return [
        Route("/", page, methods=["GET"]),
        Route("/demo/config", config, methods=["GET"]),
        Route("/demo/token", token, methods=["POST"]),
        Route("/demo/vendor/{name}", vendor, methods=["GET"]),
        Route("/demo/{name}", page_file, methods=["GET"]),
    ]
