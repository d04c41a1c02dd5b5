"""The CPU cost of one chat send on the REST side, in process, without the fan-out.

    .venv/bin/python bench/chat_post_cost.py --database sqlite --count 500
    .venv/bin/python bench/chat_post_cost.py --database postgresql --profile /tmp/post.prof

The whole platform app (middleware, JWT, FastAPI, the chat service, the outbox) runs on this
process's event loop behind `httpx.ASGITransport`; the channel has no live connection, so
the hub's fan-out is left out (bench/chat_latency.py measures the whole path). One owner
POSTs `--count` messages one after the other, after `--warmup` unmeasured ones. Prints the
process CPU time per message (on SQLite this includes aiosqlite's thread, on PostgreSQL the
server's own CPU is not counted) and the wall time per message. `--profile` writes a
cProfile file of the measured part.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import httpx

from chat_latency import DATABASE_STARTERS
from hero.auth import mint_token
from hero.platform.app import create_app
from hero.platform.settings import load_settings
from hero.realtime.testing import lifespan

KEY = "chat-post-cost-signing-key-0123456789abcdef0123456789"


async def measure(url: str, count: int, warmup: int, profile: str | None) -> dict[str, float]:
    settings = load_settings(
        None,
        {
            "JwtOptions__SigningKey": KEY,
            "DatabaseOptions__ConnectionString": url,
        },
    )
    app = create_app(settings)
    owner = uuid.uuid4()
    token = mint_token(
        settings.jwt.signing_key, settings.jwt.issuer, settings.jwt.audience, owner, name="owner"
    )
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        lifespan(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://hero", headers=headers
        ) as http,
    ):
        created = await http.post("/api/v1/chat/channels", json={"name": "cost"})
        created.raise_for_status()
        path = f"/api/v1/chat/channels/{created.json()['id']}/messages"

        async def send(n: int) -> None:
            response = await http.post(path, json={"body": f"message {n}"})
            if response.status_code != 201:
                raise RuntimeError(f"{response.status_code}: {response.text}")

        for n in range(warmup):
            await send(n)
        profiler = cProfile.Profile() if profile else None
        cpu, wall = time.process_time(), time.perf_counter()
        if profiler is not None:
            profiler.enable()
        for n in range(count):
            await send(n)
        if profiler is not None:
            profiler.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        if profiler is not None and profile:
            profiler.dump_stats(profile)
    return {"cpu_us_per_msg": cpu / count * 1e6, "wall_us_per_msg": wall / count * 1e6}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=sorted(DATABASE_STARTERS), default="sqlite")
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--profile", default=None, help="write cProfile stats here")
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="hero-post-cost-") as folder,
        DATABASE_STARTERS[args.database](Path(folder)) as database,
    ):
        result = asyncio.run(measure(database.url, args.count, args.warmup, args.profile))
    print(json.dumps({"database": args.database, "count": args.count, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
