"""A process that commits a burst of outbox events and delivers them to a file, until it is
killed. Used by test_outbox.py to show that a surviving instance delivers what a dead one
committed. Usage: python -m tests.integration.outbox_child URL DELIVERED_FILE COUNT"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from typing import Any

from hero.data import Database, Outbox


async def main(url: str, delivered_path: str, count: int) -> None:
    database = Database(url)
    out = open(delivered_path, "a", buffering=1)  # noqa: SIM115, ASYNC230 - until the kill

    async def deliver(payload: Mapping[str, Any]) -> None:
        out.write(f"{payload['n']}\n")
        os.fsync(out.fileno())

    outbox = Outbox(database, deliver)
    print("ready", flush=True)

    async def writer(first: int) -> None:
        # Eight writers at once, so several events are in flight when the kill comes.
        for n in range(first, count, 8):
            async with outbox.transaction() as work:
                work.publish("root", f"stream-{n % 3}", {"n": n})
            print(n, flush=True)

    await asyncio.gather(*(writer(first) for first in range(8)))
    print("done", flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
