"""`python -m examples.dashboard [--host H] [--port P] [--interval S] [--dashboard T:ID ...]`

Prints `dashboard serving on http://HOST:PORT` once the socket is bound (with `--port 0`,
the port the OS picked).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Sequence

import uvicorn

from examples.dashboard.app import Dashboard, build_app
from hero.platform.settings import SettingsError, load_settings
from hero.realtime import HubServer

DEFAULT_DASHBOARDS = ("acme:sales", "acme:ops", "globex:sales")


class HubAwareServer(uvicorn.Server):
    """Ends the hub's connections before uvicorn waits for open requests: a long poll or
    an SSE stream would otherwise hold the shutdown until its timeout."""

    def __init__(self, config: uvicorn.Config, hub: HubServer | None) -> None:
        super().__init__(config)
        self._hub = hub

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._hub is not None:
            await self._hub.close_connections()
        await super().shutdown(sockets)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.dashboard")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between ticks")
    parser.add_argument(
        "--dashboard",
        action="append",
        type=Dashboard.parse,
        metavar="TENANT:ID",
        help=f"a dashboard to feed (repeatable; default {', '.join(DEFAULT_DASHBOARDS)})",
    )
    parser.add_argument("--config", default=None, help="appsettings.json-shaped file")
    args = parser.parse_args(argv)
    if not args.interval > 0:
        parser.error("--interval must be positive")
    dashboards = args.dashboard or [Dashboard.parse(d) for d in DEFAULT_DASHBOARDS]

    try:
        settings = load_settings(args.config, os.environ)
    except SettingsError as exc:
        print(f"dashboard: configuration error: {exc}", file=sys.stderr)
        return 2
    if not settings.jwt.has_signing_key:
        # Unlike `hero serve` we do not invent a key: you need it to mint tokens.
        print(
            "dashboard: set JwtOptions__SigningKey (32+ characters), then mint tokens with "
            "`hero token --user-id ... --tenant acme`",
            file=sys.stderr,
        )
        return 2
    app = build_app(settings, dashboards, args.interval)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(128)
    shown = ", ".join(d.group for d in dashboards)
    print(
        f"dashboard serving on http://{args.host}:{sock.getsockname()[1]} "
        f"(hub at /realtime/hub; every {args.interval:g} s to {shown})",
        flush=True,
    )
    config = uvicorn.Config(app, lifespan="on", timeout_graceful_shutdown=5)
    HubAwareServer(config, app.state.platform.hub).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
