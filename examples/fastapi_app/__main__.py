"""`python -m examples.fastapi_app [--host H] [--port P]`: the same app as
`python -m uvicorn examples.fastapi_app.app:app`, plus two things uvicorn's command line
does not do: it prints the real port when given `--port 0` (the tests rely on that), and at
shutdown it ends the hub's connections before uvicorn waits for open requests (a long poll
or an SSE stream would otherwise hold the shutdown until its timeout).
"""

from __future__ import annotations

import argparse
import socket
from collections.abc import Sequence

import uvicorn

from examples.fastapi_app.app import HUB_PATH, app


class HubAwareServer(uvicorn.Server):
    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for hub in app.state.hubs:
            await hub.close_connections()
        await super().shutdown(sockets)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.fastapi_app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    args = parser.parse_args(argv)
    # Binding here, not in uvicorn, is what lets us print the port the OS picked.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(128)
    port = sock.getsockname()[1]
    print(f"fastapi_app serving on http://{args.host}:{port} (hub at {HUB_PATH})", flush=True)
    config = uvicorn.Config(app, lifespan="on", timeout_graceful_shutdown=5)
    HubAwareServer(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
