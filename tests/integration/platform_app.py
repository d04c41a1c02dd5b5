"""The platform with test-only modules, for the channel-dependent AppHub integration tests,
and small launchers shared by the tests/integration/test_platform_*.py modules.

`hero serve` has no chat module yet, so nobody belongs to any channel there. This app is
`create_app` with:

- a static channel membership read from the environment:
  `HERO_TEST_CHANNELS` = JSON `{channelId: [userId, ...]}` (joined as `channel:{id}` on connect)
  and `HERO_TEST_LATE_CHANNELS` (same shape): members of those channels pass the membership
  check (Typing, JoinChannel) but are *not* returned by the channel lookup on connect, as if
  they had been added to the channel after connecting;
- `ProbeMixin`, hub methods that let a test send to any group from the server side
  (`SendToUser` goes through the `user:{tenantId}:{userId}` group, proving that convention)
  and read the connection's own identity (`WhoAmI`).

Run: `python -m tests.integration.platform_app --host 127.0.0.1 --port 0` (from the repository
root) with `JwtOptions__SigningKey` set; it prints `hero serving on http://HOST:PORT`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

from starlette.applications import Starlette

from hero.auth import Principal, mint_token
from hero.conventions import user_group
from hero.platform.app import PlatformModules, create_app
from hero.platform.settings import load_settings
from hero.realtime import HubException, hub_method
from tests.support.servers import REPO, launch

CHANNELS_ENV = "HERO_TEST_CHANNELS"
LATE_CHANNELS_ENV = "HERO_TEST_LATE_CHANNELS"

SIGNING_KEY = "hero-integration-tests-signing-key-0123456789abcdef"
ISSUER = "hero.local"
AUDIENCE = "hero.clients"


def mint(
    user_id: UUID | str,
    *,
    tenant: str | None = None,
    name: str | None = None,
    ttl: float = 600,
    key: str = SIGNING_KEY,
    issuer: str = ISSUER,
    audience: str = AUDIENCE,
    **kwargs: Any,
) -> str:
    """An access token for the test servers (same key, issuer and audience)."""
    return mint_token(
        key, issuer, audience, user_id, tenant=tenant, name=name, ttl_seconds=ttl, **kwargs
    )


# ------------------------------------------------------------------------------ the test app


def _parse_channels(raw: str | None) -> dict[UUID, frozenset[UUID]]:
    if not raw:
        return {}
    data = json.loads(raw)
    return {UUID(channel): frozenset(UUID(u) for u in users) for channel, users in data.items()}


class StaticChannels:
    """ChannelLookup + ChannelMembership over a fixed map (tenant-agnostic)."""

    def __init__(
        self,
        listed: Mapping[UUID, frozenset[UUID]],
        late: Mapping[UUID, frozenset[UUID]] | None = None,
    ) -> None:
        self._listed = dict(listed)
        self._members = {**self._listed, **(late or {})}

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> StaticChannels:
        return cls(
            _parse_channels(environ.get(CHANNELS_ENV)),
            _parse_channels(environ.get(LATE_CHANNELS_ENV)),
        )

    async def channels_of(self, tenant_id: str, user_id: UUID) -> list[UUID]:
        return [c for c, members in self._listed.items() if user_id in members]

    async def is_member(self, tenant_id: str, channel_id: UUID, user_id: UUID) -> bool:
        return user_id in self._members.get(channel_id, frozenset())


class ProbeMixin:
    """Test-only hub methods (composed into AppHub by `PlatformModules.hub_mixins`)."""

    @hub_method
    async def send_to_user(self, user_id: str, target: str, arg: Any) -> None:
        """target(arg) to every connection of a user, through the caller's tenant's
        `user:{tenantId}:{userId}` group."""
        tenant = self.context.user.tenant_id  # type: ignore[attr-defined]
        await self.clients.group(user_group(tenant, user_id)).send(target, arg)  # type: ignore[attr-defined]

    @hub_method
    async def send_to_tenant_user(self, tenant: str, user_id: str, target: str, arg: Any) -> None:
        """target(arg) to every connection of a user of any tenant."""
        await self.clients.group(user_group(tenant, user_id)).send(target, arg)  # type: ignore[attr-defined]

    @hub_method
    async def send_to_group(self, name: str, target: str, arg: Any) -> None:
        """target(arg) to any group, reserved or not (server-side sends are unrestricted)."""
        await self.clients.group(name).send(target, arg)  # type: ignore[attr-defined]

    @hub_method(name="WhoAmI")
    async def who_am_i(self) -> dict[str, Any]:
        """The connection's own principal, as captured at connect time."""
        principal = self.context.user  # type: ignore[attr-defined]
        if not isinstance(principal, Principal):
            raise HubException("anonymous")
        return {
            "userId": str(principal.user_id),
            "tenantId": principal.tenant_id,
            "name": principal.name,
            "connectionId": self.context.connection_id,  # type: ignore[attr-defined]
        }


def create(environ: Mapping[str, str] | None = None) -> Starlette:
    """The platform app with the static channels and the probe hub methods."""
    environ = os.environ if environ is None else environ
    settings = load_settings(None, environ)
    if not settings.jwt.has_signing_key:
        raise SystemExit("platform_app: set JwtOptions__SigningKey (the tests mint tokens)")
    channels = StaticChannels.from_environ(environ)
    modules = PlatformModules(hub_mixins=[ProbeMixin], channels=channels, membership=channels)
    return create_app(settings, modules)


def main(argv: Sequence[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(prog="platform_app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    app = create()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(128)
    print(f"hero serving on http://{args.host}:{sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)
    asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))
    return 0


# ------------------------------------------------------------------------------ launchers

CONFIG_SECTIONS = (
    "cachingoptions",
    "jwtoptions",
    "cors",
    "databaseoptions",
    "realtime",
    "ratelimiting",
    "environment",
    "hero_test_",
)


def clean_environ(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """os.environ without any platform configuration key, plus `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.lower().replace(":", "__").startswith(CONFIG_SECTIONS)
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def hero_serve(
    env: Mapping[str, str],
    *,
    cwd: Path | str = REPO,
    extra_args: Sequence[str] = (),
    port: int = 0,
) -> Any:
    """`hero serve` on loopback, on `port` or a free one (context manager yielding a
    RunningServer)."""
    argv = ["-m", "hero", "serve", *extra_args, "--host", "127.0.0.1", "--port", str(port)]
    return launch(argv, env, cwd=cwd)


def platform_app(env: Mapping[str, str]) -> Any:
    """This module's app on a free loopback port (context manager yielding a RunningServer)."""
    argv = ["-m", "tests.integration.platform_app", "--host", "127.0.0.1", "--port", "0"]
    return launch(argv, env)


if __name__ == "__main__":
    sys.exit(main())
