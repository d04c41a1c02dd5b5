"""The `hero` command line: serve | token | conformance-server. No business logic here."""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import socket
import sys
import uuid
from collections.abc import Sequence
from typing import Any

import uvicorn

from hero.auth import mint_token
from hero.data import DatabaseError
from hero.platform import collector
from hero.platform.app import (
    StartupError,
    create_app,
    migrate_database,
    preflight,
    preflight_valkey,
)
from hero.platform.conformance import create_conformance_app
from hero.platform.http_server import HttpLimits, server_config
from hero.platform.logs import apply_log_levels, configure_logging
from hero.platform.settings import Settings, SettingsError, generate_signing_key, load_settings
from hero.platform.workers import CONFIG_FILE_VARIABLE
from hero.realtime import HubServer

logger = logging.getLogger("hero")

EXIT_CONFIG = 2
EXIT_UNAVAILABLE = 1


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on accepted sockets whose proto
    # is TCP; with proto 0 every two-write HTTP response waits for a delayed ACK (~40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn waits for open requests before the app's lifespan shutdown; long polls and
    SSE streams would hold it for up to 90 s. Ending the hubs' connections first completes
    them (poll 204, SSE end), as ASP.NET Core does when the application stops."""

    def __init__(self, config: uvicorn.Config, hubs: Sequence[HubServer]) -> None:
        super().__init__(config)
        self._hubs = hubs

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        collector.settle()  # the app and its lifespan are loaded: freeze them

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for hub in self._hubs:
            await hub.close_connections()
        await super().shutdown(sockets)


def _http_limits(settings: Settings) -> HttpLimits:
    http = settings.http
    return HttpLimits(
        max_request_line=http.max_request_line_size,
        max_request_headers=http.max_request_headers_total_size,
        headers_timeout=http.request_headers_timeout_seconds,
        min_body_rate=http.min_request_body_data_rate,
        body_grace=http.min_request_body_data_rate_grace_seconds,
        keep_alive_timeout=http.keep_alive_timeout_seconds,
    )


def _serve_app(
    app: Any, settings: Settings, host: str, port: int, banner: str, *, access_log: bool = False
) -> int:
    sock = _bind(host, port)
    actual = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    print(banner.format(url=f"http://{shown}:{actual}"), flush=True)
    config = server_config(
        app,
        limits=_http_limits(settings),
        maximum_receive_message_size=settings.realtime.maximum_receive_message_size,
        access_log=access_log,
        websocket_compression=settings.realtime.web_socket_compression,
    )
    # Server.run picks the event loop from the config: uvloop when installed ("auto").
    _Server(config, getattr(app.state, "hubs", ())).run(sockets=[sock])
    return 0


def _load(config: str | None) -> Settings:
    settings = load_settings(config, os.environ)
    apply_log_levels(settings.logging.levels())
    return settings


def _with_dev_key(settings: Settings) -> tuple[Settings, bool]:
    """The settings with a signing key, and whether a development key was generated."""
    if settings.jwt.has_signing_key:
        return settings, False
    return settings.with_signing_key(generate_signing_key()), True


def _warn_dev_key() -> None:
    logger.warning(
        "JwtOptions:SigningKey is not set: using a random development signing key for this "
        "run only. Set JwtOptions__SigningKey (32+ characters) to mint tokens with `hero token`."
    )


def _cmd_serve(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    if args.workers > 1 and settings.caching.redis is None:
        print(
            f"hero: --workers {args.workers} needs CachingOptions:Redis (a Valkey "
            "backplane); without it each worker would reach only its own clients.",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    keyed, generated = _with_dev_key(settings)
    if args.workers > 1:
        _preflight(keyed)
        if generated:
            _warn_dev_key()
        return _serve_workers(keyed, args)
    app = create_app(keyed)
    _preflight(keyed)
    if generated:
        _warn_dev_key()
    return _serve_app(
        app,
        keyed,
        args.host,
        args.port,
        "hero serving on {url} (hub at /realtime/hub)",
        access_log=True,
    )


def _serve_workers(settings: Settings, args: argparse.Namespace) -> int:
    """N processes on one socket; each builds the app from the same settings."""
    from uvicorn.supervisors import Multiprocess

    # Workers read the settings again: hand them the config file and the (maybe generated)
    # signing key through their environment.
    if args.config:
        os.environ[CONFIG_FILE_VARIABLE] = os.path.abspath(args.config)
    os.environ["JwtOptions__SigningKey"] = settings.jwt.signing_key  # noqa: SIM112
    sock = _bind(args.host, args.port)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(
        f"hero serving on http://{shown}:{sock.getsockname()[1]} (hub at /realtime/hub, "
        f"{args.workers} workers)",
        flush=True,
    )
    config = server_config(
        "hero.platform.workers:create_worker_app",
        limits=_http_limits(settings),
        maximum_receive_message_size=settings.realtime.maximum_receive_message_size,
        websocket_compression=settings.realtime.web_socket_compression,
        factory=True,
        workers=args.workers,
    )
    Multiprocess(config, sockets=[sock]).run()
    return 0


def _preflight(settings: Settings) -> None:
    """Fail fast, in one line, when the database or Valkey cannot be used."""
    asyncio.run(preflight(settings))


def _token_arguments(args: argparse.Namespace) -> tuple[uuid.UUID, float | None] | str:
    """The user id and TTL of `hero token`, or the one-line problem with them."""
    try:
        user_id = uuid.UUID(args.user_id)
    except ValueError:
        return f"--user-id must be a UUID (got {args.user_id!r})"
    if user_id.int == 0:
        return "--user-id must not be the nil UUID"
    ttl: float | None = args.ttl
    if ttl is not None and not (math.isfinite(ttl) and ttl > 0):
        return f"--ttl must be a positive number of seconds (got {ttl:g})"
    return user_id, ttl


def _cmd_token(args: argparse.Namespace) -> int:
    checked = _token_arguments(args)
    if isinstance(checked, str):
        print(f"hero: {checked}", file=sys.stderr)
        return EXIT_CONFIG
    user_id, ttl_argument = checked
    settings = _load(args.config)
    if not settings.jwt.has_signing_key:
        print(
            "hero: JwtOptions:SigningKey is not set; `hero token` must sign with the key the "
            "server validates (set JwtOptions__SigningKey or use --config).",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    ttl = ttl_argument if ttl_argument is not None else settings.jwt.access_token_minutes * 60
    token = mint_token(
        settings.jwt.signing_key,
        settings.jwt.issuer,
        settings.jwt.audience,
        user_id,
        name=args.name,
        tenant=args.tenant,
        roles=args.role or (),
        ttl_seconds=ttl,
    )
    print(token)
    return 0


def _cmd_conformance(args: argparse.Namespace) -> int:
    settings = _load(args.config)
    if settings.caching.redis is not None:
        asyncio.run(preflight_valkey(settings))
    return _serve_app(
        create_conformance_app(settings),
        settings,
        args.host,
        args.port,
        "hero conformance-server listening on {url} (hub at /conformance)",
    )


def _cmd_migrate(args: argparse.Namespace) -> int:
    """Apply every migration to the configured database and print the revisions."""
    settings = _load(args.config)
    revisions = asyncio.run(migrate_database(settings))
    print(f"hero: database at {', '.join(revisions) or 'no revision'}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hero", description="hero platform command line")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the platform")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--config", default=None, help="appsettings.json-shaped file")
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(run=_cmd_serve)

    token = sub.add_parser("token", help="print a signed access token")
    token.add_argument("--user-id", required=True)
    token.add_argument("--name", default=None)
    token.add_argument("--tenant", default=None)
    token.add_argument("--role", action="append", default=[])
    token.add_argument("--ttl", type=float, default=None, help="lifetime in seconds")
    token.add_argument("--config", default=None)
    token.set_defaults(run=_cmd_token)

    migrate = sub.add_parser("migrate", help="apply the database migrations and exit")
    migrate.add_argument("--config", default=None)
    migrate.set_defaults(run=_cmd_migrate)

    conf = sub.add_parser("conformance-server", help="serve the ConformanceHub at /conformance")
    conf.add_argument("--host", default="127.0.0.1")
    conf.add_argument("--port", type=int, default=8000)
    conf.add_argument("--config", default=None)
    conf.set_defaults(run=_cmd_conformance)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging()
    try:
        code: int = args.run(args)
    except SettingsError as exc:
        print(f"hero: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except StartupError as exc:
        print(f"hero: cannot start: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except DatabaseError as exc:
        print(
            f"hero: configuration error: DatabaseOptions:ConnectionString: {exc}", file=sys.stderr
        )
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
