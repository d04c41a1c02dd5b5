"""The `hero` command line: serve | token | conformance-server. No business logic here."""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from collections.abc import Sequence
from typing import Any

import uvicorn
from starlette.applications import Starlette

from hero.realtime import HubRoute, HubServer
from hero.realtime.testing import ConformanceHub


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _serve_app(app: Any, host: str, port: int, banner: str) -> int:
    sock = _bind(host, port)
    actual = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    print(banner.format(url=f"http://{shown}:{actual}"), flush=True)
    config = uvicorn.Config(app, log_level="warning", ws_max_size=16 * 1024 * 1024, lifespan="on")
    server = uvicorn.Server(config)
    asyncio.run(server.serve(sockets=[sock]))
    return 0


def _conformance_app() -> Starlette:
    hub = HubServer(ConformanceHub)

    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with hub.lifespan():
            yield

    return Starlette(routes=[HubRoute("/conformance", hub)], lifespan=lifespan)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hero", description="hero platform command line")
    sub = parser.add_subparsers(dest="command", required=True)
    conf = sub.add_parser("conformance-server", help="serve the ConformanceHub at /conformance")
    conf.add_argument("--host", default="127.0.0.1")
    conf.add_argument("--port", type=int, default=8000)
    conf.add_argument("--config", default=None)
    args = parser.parse_args(argv)
    if args.command == "conformance-server":
        return _serve_app(
            _conformance_app(),
            args.host,
            args.port,
            "hero conformance-server listening on {url} (hub at /conformance)",
        )
    return 2  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
